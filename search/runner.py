"""The search loop: ask -> (memory | journal replay | evaluate) -> tell, with a journal and a run dir.

Run directory contents (read by the deploy flow and the report):

``journal.sqlite``  every evaluation (see :mod:`bitswarm.search.journal`)
``history.json``    per round: iteration, phase, best fitness, best violation, evaluations (trained), cost_only,
                    wall_s (seconds since this process entered the loop; a resumed run restarts the clock)
``best_bits.yaml``  the best configuration by Deb's rule (only when it is feasible)
``result.json``     settings, feasible, best (bits, fitness, violation, cost), evaluations (= evaluations_trained),
                    evaluations_trained, evaluations_cost_only, unique positions, wall time

An evaluation is *trained* (fine-tuned and validated) or *cost-only* (its cost already violated a
constraint, so it was not fine-tuned; see :class:`bitswarm.search.problem.Evaluation`). The budget
counts trained evaluations only; cost-only ones are cheap but not free (a cost model call and a
journal row), so a run with a budget also stops after ``COST_ONLY_FACTOR * budget`` of them.
The fitness of an untrained candidate (-inf) is written to the JSON files as null.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from bitswarm import atomic
from bitswarm.search.encoding import Encoding
from bitswarm.search.journal import Journal

COST_ONLY_FACTOR = 20


def _finite(data):
    """``data`` with every non-finite float as None: strict JSON has no -inf or NaN."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def write_json(path: Path, data) -> None:
    """Atomic, strict JSON (non-finite floats as null)."""
    atomic.write_json(path, _finite(data), indent=2, default=str, allow_nan=False)


def as_evaluation(res) -> tuple[float, float, dict, bool]:
    """(fitness, violation, cost, trained); a plain ``(fitness, violation, cost)`` counts as trained."""
    return float(res[0]), float(res[1]), res[2], bool(res[3]) if len(res) > 3 else True


def _replay_index(journal: Journal) -> dict[tuple, deque]:
    """Journalled results by position (a position evaluated k times has k entries, in order)."""
    out: dict[tuple, deque] = defaultdict(deque)
    for rec in journal.records:
        out[rec.position].append((rec.fitness, rec.violation, rec.cost, rec.trained))
    return out


class _Tally:
    """Trained and cost-only evaluations; the progress bar counts the trained ones."""

    def __init__(self, bar, on_eval):
        self.trained = self.cost_only = 0
        self.bar, self.on_eval = bar, on_eval

    def add(self, trained: bool, fresh: bool) -> None:
        if fresh and self.on_eval:
            self.on_eval(self.trained + self.cost_only)
        if trained:
            self.trained += 1
            self.bar.update(1)
        else:
            self.cost_only += 1

    def within(self, budget: int | None) -> bool:
        return budget is None or (self.trained < budget and self.cost_only < COST_ONLY_FACTOR * budget)


def _round(enc: Encoding, positions: list, memory: dict, replay: dict, journal: Journal | None, executor,
           tally: _Tally, screening: bool, seed: int) -> list:
    """Results of one round in ask order: memory, journal replay, else evaluated (and journalled)."""
    keys = [enc.key(p) for p in positions]
    results: list = [None] * len(positions)
    todo: list[int] = []
    queued: set = set()
    for i, key in enumerate(keys):
        if screening and (key in memory or key in queued):
            continue  # never evaluated twice: filled from memory below
        if replay.get(key):  # resume: what the journal already holds is not evaluated again
            results[i] = replay[key].popleft()
            tally.add(results[i][3], fresh=False)
            memory.setdefault(key, results[i])
        else:
            todo.append(i)
            queued.add(key)
    for k, res, secs in executor.run([enc.decode(positions[i]) for i in todo]):
        i = todo[k]
        results[i] = as_evaluation(res)
        if journal is not None:
            journal.append(keys[i], enc.record(positions[i]), *results[i][:3], seed, secs, results[i][3])
        tally.add(results[i][3], fresh=True)
    for i, key in enumerate(keys):
        if results[i] is None:
            results[i] = memory[key]
        memory.setdefault(key, results[i])
    return results


def _postfix(res) -> dict:
    return {"best": f"{res[0]:.4f}" if res[1] <= 0 else "none feasible", "viol": f"{res[1]:.3f}"}


def run_search(space: Encoding, searcher, evaluate, run_dir: Path | None, signature: dict, *,
               screening: bool = True, seed: int = 0, progress: bool = True, on_eval=None,
               budget: int | None = None, executor=None) -> dict:
    """Drive ``searcher`` to its end (or until ``budget`` trained evaluations, checked between rounds);
    ``evaluate(space.decode(pos)) -> (fitness, violation, cost dict[, trained])``, run by ``executor``
    (default: serial). ``space`` is the positions' encoding (a bit-width :class:`Space` or a
    :class:`~bitswarm.search.encoding.VectorEncoding`). ``run_dir=None`` runs without journal or files
    (an in-process search of cheap evaluations, e.g. k-means' PSO). Returns what ``result.json`` holds
    (an untrained fitness as None)."""
    if run_dir is None:
        return _run_locked(space, searcher, evaluate, None, signature, screening, seed, progress, on_eval, budget,
                           executor)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from bitswarm.errors import ConfigError

        raise ConfigError(str(run_dir), "--run-dir", f"cannot create it ({e.strerror})", "a writable directory") from e
    lock = lock_run_dir(run_dir)
    try:
        return _run_locked(space, searcher, evaluate, run_dir, signature, screening, seed, progress, on_eval,
                           budget, executor)
    finally:
        lock.close()


def lock_run_dir(run_dir: Path):
    """An exclusive lock on ``run_dir`` for the life of a search: a second search on it is refused at once."""
    from bitswarm.locks import hold_lock

    return hold_lock(run_dir / ".lock", "run dir", "another search is running in it",
                     "wait for it to finish, or use another --run-dir")


def _run_locked(space, searcher, evaluate, run_dir: Path, signature: dict, screening: bool, seed: int, progress: bool,
                on_eval, budget: int | None, executor) -> dict:
    from bitswarm.search.executor import SerialExecutor

    journal = Journal(run_dir / "journal.sqlite", signature) if run_dir is not None else None
    replay = _replay_index(journal) if journal is not None else {}
    executor = executor or SerialExecutor(evaluate)
    memory: dict[tuple, tuple] = {}
    history, t0 = [], time.time()
    bar = tqdm(total=budget or planned_evaluations(searcher), desc="search (trained)", unit="eval",
               disable=None if progress else True, mininterval=1.0, leave=run_dir is not None)
    tally = _Tally(bar, on_eval)
    try:
        while not searcher.done() and tally.within(budget):
            phase = getattr(searcher, "phase", "move")
            results = _round(space, searcher.ask(), memory, replay, journal, executor, tally, screening, seed)
            searcher.tell([r[:2] for r in results])
            _, best = searcher.best()
            history.append({"iteration": len(history), "phase": phase, "best_fitness": best[0],
                            "best_violation": best[1], "evaluations": tally.trained,
                            "cost_only": tally.cost_only, "wall_s": round(time.time() - t0, 2)})
            bar.set_postfix(**_postfix(best), cost_only=tally.cost_only)
    finally:
        bar.close()
        if journal is not None:
            journal.close()
        executor.close()
    return _finish(space, searcher, run_dir, signature, memory, history, tally, time.time() - t0)


def planned_evaluations(searcher) -> int | None:
    """The progress bar's total: the searcher's own estimate, else particles x (iterations + 1)."""
    if hasattr(searcher, "planned_evaluations"):
        return searcher.planned_evaluations()
    s = searcher.s
    return s.particles * (s.iterations + 1) if hasattr(s, "particles") and hasattr(s, "iterations") else None


def _finish(enc: Encoding, searcher, run_dir: Path | None, signature: dict, memory: dict, history: list,
            tally: _Tally, wall: float) -> dict:
    best_pos, (fitness, violation) = searcher.best()
    if run_dir is not None and violation <= 0:  # an infeasible best is in result.json, not offered for use
        enc.save_best(best_pos, run_dir)
    result = {"signature": signature, "settings": asdict(searcher.s), "feasible": violation <= 0, "best": {
        "bits": enc.record(best_pos), "fitness": fitness, "violation": violation,
        "cost": memory[enc.key(best_pos)][2]}, "evaluations": tally.trained, "evaluations_trained": tally.trained,
        "evaluations_cost_only": tally.cost_only, "unique_positions": len(memory), "wall_s": round(wall, 2)}
    if run_dir is not None:
        write_json(run_dir / "history.json", history)
        write_json(run_dir / "result.json", result)
    return _finite(result)
