"""Evolutionary fine-tuning of a quantized model's weights (Pietron et al., arXiv 2605.05228).

The paper's claim: nearest rounding does not give the best quantized network; an evolution
strategy that, per iteration, moves a *small percentage* of the weights to other quantization
levels improves accuracy quickly. Only the abstract is available here, so the operators and
parameters below are this implementation's choices (documented in NOTES.md):

* representation: the integer code vector of all searched layers (:mod:`qgrid`); the start
  is nearest rounding of the pretrained weights and is the whole initial population;
* (mu + lambda) selection with elitism: the best individual is never lost, so the result is
  never worse *on the fitness subset* than nearest rounding;
* mutation of ``rate`` x n weights of a parent, each by one level, with two operators chosen
  at random per child: ``toward`` picks weights with probability proportional to their
  rounding error |w/scale - code| and moves them towards their latent float value (the
  second-nearest level), ``random`` picks uniformly and moves +-1;
* every code stays in [qmin, qmax] and within ``radius`` levels of its nearest rounding;
* fitness: accuracy on a subset of the *validation* split (ties: lower cross-entropy).

Pure part: :class:`EvoFinetune` works on numpy code vectors (ask/tell). The model side is
:func:`evo_finetune`, which wires a Brevitas model and a split into it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bitswarm.search.compress.vector_loop import VectorSearcher, drive

OPERATORS = ("toward", "random")


@dataclass(frozen=True)
class EvoParams:
    mu: int = 4  # parents kept
    lam: int = 8  # children per generation
    rate: float = 0.002  # fraction of weights moved per child
    radius: int = 1  # max distance (levels) from nearest rounding
    operators: tuple[str, ...] = OPERATORS


@dataclass
class EvoResult:
    best: np.ndarray
    best_fitness: float
    start_fitness: float
    history: list[float] = field(default_factory=list)  # best fitness after each generation
    evaluations: int = 0


class EvoFinetune(VectorSearcher):
    """(mu + lambda)-ES over integer codes. ``start`` = nearest rounding, ``ratio`` = w/scale; ask / tell
    (:class:`~bitswarm.search.searcher.Searcher`), ``generations`` after the start's evaluation."""

    def __init__(self, start: np.ndarray, ratio: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 params: EvoParams, seed: int = 0, generations: int = 0):
        bad = set(params.operators) - set(OPERATORS)
        if bad:
            raise ValueError(f"unknown operators {sorted(bad)}; allowed {OPERATORS}")
        super().__init__(params, seed)
        self.generations, self.gen = generations, -1  # -1: the start is not evaluated yet
        self.start = start.astype(np.int64)
        self.lo = np.maximum(lo, self.start - params.radius)
        self.hi = np.minimum(hi, self.start + params.radius)
        err = np.abs(ratio - self.start)
        self.err_p = err / err.sum() if err.sum() > 0 else None
        self.toward = np.sign(ratio - self.start).astype(np.int64)
        self.pop: list[tuple[float, np.ndarray]] = []
        self.n_move = max(1, int(round(params.rate * start.size)))

    def _mutate(self, parent: np.ndarray) -> np.ndarray:
        child = parent.copy()
        op = self.rng.choice(self.s.operators)
        if op == "toward" and self.err_p is not None:
            idx = self.rng.choice(child.size, self.n_move, replace=False, p=self.err_p)
            step = self.toward[idx]
            # a weight already moved towards its float value goes back to nearest rounding
            step = np.where(child[idx] != self.start[idx], self.start[idx] - child[idx], step)
        else:
            idx = self.rng.choice(child.size, self.n_move, replace=False)
            step = self.rng.choice(np.array([-1, 1]), self.n_move)
        child[idx] = np.clip(child[idx] + step, self.lo[idx], self.hi[idx])
        return child

    def done(self) -> bool:
        return self.gen >= self.generations

    def ask(self) -> list[np.ndarray]:
        if not self.pop:
            return self._ask([self.start])
        parents = [self.pop[i][1] for i in self.rng.integers(0, len(self.pop), self.s.lam)]
        return self._ask([self._mutate(p) for p in parents])

    def tell(self, results) -> None:
        fs = self._told(results)
        merged = self.pop + list(zip(fs.tolist(), self._pending, strict=True))
        merged.sort(key=lambda t: -t[0])  # stable: on ties the older individual stays first
        self.pop = merged[:self.s.mu]
        self.gb, self.gb_f = self.pop[0][1], self.pop[0][0]
        self._record(self.gb_f)
        self.gen += 1


def run(fitness: Callable[[np.ndarray], float], algo: EvoFinetune, generations: int,
        progress: bool = False, run_dir=None) -> EvoResult:
    """``generations`` of ``algo`` in the journalled loop (``run_dir``: journal and resume; None: in memory)."""
    algo.generations = generations
    drive(algo, fitness, algo.start.size, run_dir=run_dir, progress=progress, desc="evo")
    best_x, (best_f, _) = algo.best()
    return EvoResult(best_x, best_f, algo.first_f, [f for _, f in algo.history], algo.told)


def evo_finetune(model, split, n_fitness: int, params: EvoParams, generations: int, seed: int = 0,
                 progress: bool = False) -> EvoResult:
    """Fine-tune ``model``'s quantized weights in place; fitness on ``split[:n_fitness]``."""
    from bitswarm.search.compress import qgrid

    grids = qgrid.extract_grids(model)
    start = qgrid.flatten([g.codes for g in grids])
    ratio = np.concatenate([g.ratio.reshape(-1).numpy() for g in grids])
    lo, hi = qgrid.bounds(grids)
    fit = qgrid.Fitness(model, grids, split, n_fitness)
    res = run(fit, EvoFinetune(start, ratio, lo, hi, params, seed), generations, progress)
    qgrid.write_codes(model, grids, qgrid.unflatten(res.best, grids))
    return res
