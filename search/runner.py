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
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from bitswarm.search.journal import Journal
from bitswarm.search.space import Space


def _write(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def run_search(space: Space, searcher, evaluate, run_dir: Path, signature: dict, *, screening: bool = True,
               seed: int = 0, progress: bool = True, on_eval=None, budget: int | None = None) -> dict:
    """Drive ``searcher`` to its end (or until ``budget`` evaluations, checked between rounds);
    ``evaluate(bits) -> (fitness, violation, cost dict)``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(run_dir / "journal.sqlite", signature)
    memory: dict[tuple, tuple[float, float, dict]] = {}
    calls, history, t0 = 0, [], time.time()
    total = budget or searcher.s.particles * (searcher.s.iterations + 1)
    bar = tqdm(total=total, desc="search", unit="eval", disable=None if progress else True, mininterval=1.0)
    try:
        while not searcher.done() and (budget is None or calls < budget):
            positions, results = searcher.ask(), []
            for pos in positions:
                if screening and pos in memory:
                    results.append(memory[pos][:2])
                    continue
                if calls < len(journal.records):  # resume: replay what was already evaluated
                    rec = journal.records[calls]
                    if rec.position != pos:
                        raise RuntimeError(f"{journal.path}: evaluation {calls} was {rec.position}, now {pos}")
                    res = (rec.fitness, rec.violation, rec.cost)
                else:
                    bits = space.to_bits(pos)
                    t1 = time.time()
                    res = evaluate(bits)
                    journal.append(pos, bits.to_dict()["layers"], res[0], res[1], res[2], seed, time.time() - t1)
                    if on_eval:
                        on_eval(calls)
                calls += 1
                bar.update(1)
                memory.setdefault(pos, res)
                results.append(res[:2])
            phase = getattr(searcher, "phase", "move")
            searcher.tell(results)
            history.append({"iteration": len(history), "phase": phase, "best_fitness": searcher.gb_res[0],
                            "best_violation": searcher.gb_res[1], "evaluations": calls})
            bar.set_postfix(best=f"{searcher.gb_res[0]:.4f}", viol=f"{searcher.gb_res[1]:.3f}")
    finally:
        bar.close()
        journal.close()
    best_bits = space.to_bits(searcher.gb)
    best_bits.save(run_dir / "best_bits.yaml")
    result = {"signature": signature, "settings": asdict(searcher.s), "best": {
        "bits": best_bits.to_dict()["layers"], "fitness": searcher.gb_res[0], "violation": searcher.gb_res[1],
        "cost": memory[searcher.gb][2]}, "evaluations": calls, "unique_positions": len(memory),
        "wall_s": round(time.time() - t0, 2)}
    _write(run_dir / "history.json", history)
    _write(run_dir / "result.json", result)
    return result
