"""The one loop every seed-method optimizer runs in: a vector searcher, its fitness, the journalled run loop.

:func:`drive` runs an ask / tell searcher over numeric vectors through
:func:`bitswarm.search.runner.run_search` with a :class:`~bitswarm.search.encoding.VectorEncoding`, so
every optimizer of the seed methods (evolutionary fine-tuning, EDA and EDA+CC, their GA and local search,
k-means' PSO) gets the memory (a vector is never evaluated twice), the SQLite journal and resume after
``kill -9`` when a run directory is given, and the executors. Fitness is maximised; no constraints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitswarm.search.encoding import VectorEncoding
from bitswarm.search.runner import run_search


@dataclass(frozen=True)
class VectorTask:
    """Where a vector searcher starts and the box it stays in (``lo``/``hi`` inclusive, per element)."""

    start: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    ratio: np.ndarray | None = None  # evo: each weight's float value in grid steps


def drive(searcher, fitness: Callable[[np.ndarray], float], size: int, *, dtype=np.int64, run_dir: Path | None = None,
          progress: bool = False, desc: str = "search", signature: dict | None = None) -> None:
    """Run ``searcher`` to its end on ``fitness`` (vector -> float, higher is better); ``searcher.told``
    counts every told position (memory hits included: the closed loops' "fitness evaluations").
    ``run_dir``: journal (resume after ``kill -9``) and result files; None: in memory."""
    run_search(VectorEncoding(size, dtype), searcher, lambda x: (float(fitness(x)), 0.0, {}), run_dir,
               signature or {"searcher": type(searcher).__name__, "desc": desc}, progress=progress)


class VectorSearcher:
    """Shared bookkeeping of the vector searchers: pending positions, best by fitness, ``history``
    [(evaluations told, best)]."""

    def __init__(self, settings, seed: int | np.random.Generator):
        self.s, self.rng = settings, np.random.default_rng(seed)
        self.gb, self.gb_f, self.told, self.first_f = None, float("-inf"), 0, float("nan")
        self.history: list[tuple[int, float]] = []
        self._pending: list[np.ndarray] = []

    def best(self):
        return self.gb, (self.gb_f, 0.0 if self.gb is not None else float("inf"))

    def _ask(self, xs) -> list[np.ndarray]:
        self._pending = [np.array(x) for x in xs]
        return list(self._pending)

    def _told(self, results) -> np.ndarray:
        fs = np.array([float(r[0]) for r in results])
        for x, f in zip(self._pending, fs, strict=True):
            if f > self.gb_f:
                self.gb, self.gb_f = x, float(f)
        if not self.told:
            self.first_f = float(fs[0])
        self.told += len(fs)
        return fs

    def _record(self, best_f: float) -> None:
        self.history.append((self.told, float(best_f)))
