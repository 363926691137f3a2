"""The search loop: ask -> (memory | journal replay | evaluate) -> tell, with a journal and a run dir.

Run directory contents (read by the deploy flow and the report):

``journal.sqlite``  every evaluation (see :mod:`bitswarm.search.journal`)
``history.json``    per round: iteration, phase, best fitness, best violation, evaluations
``best_bits.yaml``  the best configuration by Deb's rule
``result.json``     settings, best (bits, fitness, violation, cost), evaluations, wall time
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from bitswarm.search.journal import Journal
from bitswarm.search.space import Space


def _write(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def _replay_index(journal: Journal) -> dict[tuple, deque]:
    """Journalled results by position (a position evaluated k times has k entries, in order)."""
    out: dict[tuple, deque] = defaultdict(deque)
    for rec in journal.records:
        out[rec.position].append((rec.fitness, rec.violation, rec.cost))
    return out


def run_search(space: Space, searcher, evaluate, run_dir: Path, signature: dict, *, screening: bool = True,
               seed: int = 0, progress: bool = True, on_eval=None, budget: int | None = None,
               executor=None) -> dict:
    """Drive ``searcher`` to its end (or until ``budget`` evaluations, checked between rounds);
    ``evaluate(bits) -> (fitness, violation, cost dict)``, run by ``executor`` (default: serial)."""
    from bitswarm.search.executor import SerialExecutor

    run_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(run_dir / "journal.sqlite", signature)
    replay = _replay_index(journal)
    executor = executor or SerialExecutor(evaluate)
    memory: dict[tuple, tuple[float, float, dict]] = {}
    calls, history, t0 = 0, [], time.time()
    total = budget or searcher.s.particles * (searcher.s.iterations + 1)
    bar = tqdm(total=total, desc="search", unit="eval", disable=None if progress else True, mininterval=1.0)
    try:
        while not searcher.done() and (budget is None or calls < budget):
            positions = searcher.ask()
            results: list = [None] * len(positions)
            todo: list[int] = []
            for i, pos in enumerate(positions):
                if screening and (pos in memory or pos in (positions[j] for j in todo)):
                    continue  # never evaluated twice: filled from memory below
                if replay.get(pos):  # resume: what the journal already holds is not evaluated again
                    results[i] = replay[pos].popleft()
                    calls += 1
                    bar.update(1)
                    memory.setdefault(pos, results[i])
                else:
                    todo.append(i)
            for k, res, secs in executor.run([space.to_bits(positions[i]) for i in todo]):
                i = todo[k]
                journal.append(positions[i], space.to_bits(positions[i]).to_dict()["layers"], res[0], res[1], res[2],
                               seed, secs)
                results[i] = res
                if on_eval:
                    on_eval(calls)
                calls += 1
                bar.update(1)
            for i, pos in enumerate(positions):
                if results[i] is None:
                    results[i] = memory[pos]
                memory.setdefault(pos, results[i])
            phase = getattr(searcher, "phase", "move")
            searcher.tell([r[:2] for r in results])
            history.append({"iteration": len(history), "phase": phase, "best_fitness": searcher.gb_res[0],
                            "best_violation": searcher.gb_res[1], "evaluations": calls})
            bar.set_postfix(best=f"{searcher.gb_res[0]:.4f}", viol=f"{searcher.gb_res[1]:.3f}")
    finally:
        bar.close()
        journal.close()
        executor.close()
    best_bits = space.to_bits(searcher.gb)
    best_bits.save(run_dir / "best_bits.yaml")
    result = {"signature": signature, "settings": asdict(searcher.s), "best": {
        "bits": best_bits.to_dict()["layers"], "fitness": searcher.gb_res[0], "violation": searcher.gb_res[1],
        "cost": memory[searcher.gb][2]}, "evaluations": calls, "unique_positions": len(memory),
        "wall_s": round(time.time() - t0, 2)}
    _write(run_dir / "history.json", history)
    _write(run_dir / "result.json", result)
    return result
