"""EDA with cooperative coevolution for gradient-free low-bit weights (Peng, Liu, Lu, Tang).

Search space (paper §4.1): every weight takes one of two values, ``cand[i, 0]`` (its value
before perturbation / nearest rounding) or ``cand[i, 1]`` (an adjacent quantization level), so
a solution is a vector of level indices ``x`` and the weights are ``cand[arange(n), x]``. The
model is a PBIL-style independent categorical distribution ``P`` (n x L; L = 2 here, any L
works).

* :class:`EDA` is Algorithm 1: sigma-greedy initialisation around the current best (Eq. 5),
  sample S, rank, frequency model of the N_best best, ``P = (1-alpha) P + alpha P_best``.
* :func:`run_eda_cc` is Algorithm 2: every G generations sort all variables by how fast
  their distribution converged (mean of max_j P[i, j] over the last G generations in which
  the variable was free), fix the first beta*n (fast, group A) to the best individual and
  re-initialise only the rest (group B) sigma-greedily; ``cc=False`` gives "EDA w/o CC"
  (re-initialise everything).
* :func:`run_ga` (tournament, uniform crossover, flip mutation, elitism) and
  :func:`run_local_search` ((1+1) stochastic local search) are the §4.4 comparisons.

Deviations (NOTES.md): the paper's N_best = S = 20 leaves no selection in the model update,
so N_best defaults to S/4; "convergence speed" is not defined in the paper, the measure above
is this implementation's; only weights are searched (BN and activation scales stay as
trained — the paper also quantizes those to [-1, 1]); the budget is a number of fitness
evaluations (FEs), scaled from 100-150K to a few thousand; fitness is accuracy on a subset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bitswarm.search.compress.vector_loop import VectorSearcher, VectorTask, drive

Fitness = Callable[[np.ndarray], float]  # level-index vector -> higher is better


@dataclass(frozen=True)
class EDAParams:
    pop: int = 20  # S
    n_best: int = 5  # N_best (paper: 20 = S)
    alpha: float = 0.1  # updating step
    sigma: float = 0.95  # sigma-greedy
    gens: int = 50  # G between regroupings / restarts (paper: 500)
    beta: tuple[float, float] = (0.4, 0.6)  # beta ~ U(lo, hi): fraction fixed (group A)


@dataclass
class SearchResult:
    best: np.ndarray
    best_fitness: float
    start_fitness: float
    history: list[tuple[int, float]] = field(default_factory=list)  # (FEs, best fitness)

    @property
    def evaluations(self) -> int:
        return self.history[-1][0] if self.history else 0


def sigma_greedy(x: np.ndarray, levels: int, sigma: float) -> np.ndarray:
    """Eq. 5: P(x_i = current) = sigma, the other levels share 1 - sigma."""
    p = np.full((x.size, levels), (1.0 - sigma) / (levels - 1))
    p[np.arange(x.size), x] = sigma
    return p


def sample(p: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` level-index vectors drawn from the independent categorical model ``p``."""
    cum = np.cumsum(p, axis=1)[:, :-1]
    u = rng.random((k, p.shape[0], 1))
    return (u > cum[None]).sum(-1).astype(np.int64)


class EDA:
    """Algorithm 1 over the variables in ``free`` (the others stay at the best individual)."""

    def __init__(self, best: np.ndarray, best_f: float, levels: int, params: EDAParams, rng):
        self.best, self.best_f, self.levels, self.p, self.rng = best.copy(), best_f, levels, params, rng
        self.free = np.arange(best.size)
        self.reset(self.free)

    def reset(self, free: np.ndarray) -> None:
        self.free = free
        self.P = sigma_greedy(self.best[free], self.levels, self.p.sigma)
        self.confidence = np.zeros(free.size)  # sum over generations of max_j P[i, j]

    def ask(self) -> np.ndarray:
        xs = np.repeat(self.best[None], self.p.pop, axis=0)
        xs[:, self.free] = sample(self.P, self.p.pop, self.rng)
        return xs

    def tell(self, xs: np.ndarray, fs: np.ndarray) -> None:
        order = np.argsort(-fs, kind="stable")
        if fs[order[0]] > self.best_f:
            self.best, self.best_f = xs[order[0]].copy(), float(fs[order[0]])
        top = xs[order[:self.p.n_best]][:, self.free]
        p_best = np.stack([(top == j).mean(0) for j in range(self.levels)], axis=1)
        self.P = (1 - self.p.alpha) * self.P + self.p.alpha * p_best
        self.confidence += self.P.max(1)


def run_eda_cc(fitness: Fitness, start: np.ndarray, levels: int, params: EDAParams, budget: int,
               seed: int = 0, cc: bool = True, threshold: float = float("inf"), progress: bool = False,
               run_dir=None) -> SearchResult:
    """Algorithm 2 (``cc=True``) or EDA w/o CC (``cc=False``) until ``budget`` FEs or ``threshold``."""
    task = VectorTask(start, np.zeros_like(start), np.full_like(start, levels - 1))
    return _result(EDASearcher(task, levels, params, seed, budget, cc, threshold), fitness, start, run_dir,
                   progress, "eda+cc" if cc else "eda")


def run_ga(fitness: Fitness, start: np.ndarray, levels: int, budget: int, seed: int = 0, pop: int = 20,
           init_flip: float = 0.05, mutation: float = 0.002, tournament: int = 2, run_dir=None) -> SearchResult:
    """Generational GA with one elite; the initial population is ``start`` plus sigma-greedy samples."""
    task = VectorTask(start, np.zeros_like(start), np.full_like(start, levels - 1))
    return _result(GASearcher(task, levels, GASettings(pop, init_flip, mutation, tournament), seed, budget),
                   fitness, start, run_dir, False, "ga")


def run_local_search(fitness: Fitness, start: np.ndarray, levels: int, budget: int, seed: int = 0,
                     moves: float = 0.002, run_dir=None) -> SearchResult:
    """(1+1) stochastic local search: change ``moves`` x n random variables, keep if not worse."""
    task = VectorTask(start, np.zeros_like(start), np.full_like(start, levels - 1))
    return _result(LocalSearcher(task, levels, LSSettings(moves), seed, budget), fitness, start, run_dir, False,
                   "ls")


def _result(searcher, fitness: Fitness, start: np.ndarray, run_dir, progress: bool, desc: str) -> SearchResult:
    drive(searcher, fitness, start.size, run_dir=run_dir, progress=progress, desc=desc)
    best, (best_f, _) = searcher.best()
    return SearchResult(best, best_f, searcher.first_f, list(searcher.history))


@dataclass(frozen=True)
class GASettings:
    pop: int = 20
    init_flip: float = 0.05
    mutation: float = 0.002
    tournament: int = 2


@dataclass(frozen=True)
class LSSettings:
    moves: float = 0.002


class EDASearcher(VectorSearcher):
    """Algorithm 2 of EDA+CC (``cc=True``) or EDA w/o CC, until ``evaluations`` FEs or ``threshold``."""

    def __init__(self, task: VectorTask, levels: int, params: EDAParams, seed: int, evaluations: int,
                 cc: bool = True, threshold: float = float("inf")):
        super().__init__(params, seed)
        self.start, self.levels, self.cc = np.asarray(task.start, np.int64), levels, cc
        self.evaluations, self.threshold = evaluations, threshold
        self.eda: EDA | None = None
        self.gen = 0
        self.conf = np.zeros(self.start.size)

    def done(self) -> bool:
        return self.eda is not None and (self.told + self.s.pop > self.evaluations or self.eda.best_f > self.threshold)

    def ask(self):
        if self.eda is None:
            return self._ask([self.start])
        if self.gen and self.gen % self.s.gens == 0:
            if self.cc:  # group A: the beta*n fastest-converging variables, fixed at the best individual
                self.conf[self.eda.free] = self.eda.confidence / self.s.gens
                beta = self.rng.uniform(*self.s.beta)
                order = np.argsort(-self.conf, kind="stable")
                self.eda.reset(np.sort(order[int(beta * self.start.size):]))
            else:
                self.eda.reset(np.arange(self.start.size))
        return self._ask(self.eda.ask())

    def tell(self, results) -> None:
        fs = self._told(results)
        if self.eda is None:
            self.eda = EDA(self.start, float(fs[0]), self.levels, self.s, self.rng)
        else:
            self.eda.tell(np.stack(self._pending), fs)
            self.gen += 1
        self.gb, self.gb_f = self.eda.best, self.eda.best_f
        self._record(self.eda.best_f)


class GASearcher(VectorSearcher):
    """Generational GA with one elite; the initial population is the start plus sigma-greedy samples."""

    def __init__(self, task: VectorTask, levels: int, settings: GASettings, seed: int, evaluations: int):
        super().__init__(settings, seed)
        self.start, self.levels, self.evaluations = np.asarray(task.start, np.int64), levels, evaluations
        self.xs: np.ndarray | None = None
        self.fs: np.ndarray | None = None
        self._elite = 0

    def done(self) -> bool:
        return self.xs is not None and self.told + self.s.pop - 1 > self.evaluations

    def ask(self):
        s = self.s
        if self.xs is None:
            xs = sample(sigma_greedy(self.start, self.levels, 1 - s.init_flip), s.pop, self.rng)
            xs[0] = self.start
            return self._ask(xs)
        self._elite = int(np.argmax(self.fs))
        kids = []
        for _ in range(s.pop - 1):
            a, b = self._tournament(), self._tournament()
            child = np.where(self.rng.random(a.size) < 0.5, a, b)
            flip = self.rng.random(a.size) < s.mutation
            child[flip] = (child[flip] + self.rng.integers(1, self.levels, flip.sum())) % self.levels
            kids.append(child)
        return self._ask(kids)

    def _tournament(self) -> np.ndarray:
        cand = self.rng.integers(0, len(self.xs), self.s.tournament)
        return self.xs[cand[np.argmax(self.fs[cand])]]

    def tell(self, results) -> None:
        elite_x = None if self.xs is None else self.xs[self._elite].copy()
        elite_f = None if self.fs is None else self.fs[self._elite]
        fs = self._told(results)
        if elite_x is None:
            self.xs, self.fs = np.stack(self._pending), fs
        else:
            self.xs, self.fs = np.stack([elite_x] + self._pending), np.concatenate([[elite_f], fs])
        self._record(float(self.fs.max()))


class LocalSearcher(VectorSearcher):
    """(1+1) stochastic local search: change ``moves`` x n random variables, keep if not worse."""

    def __init__(self, task: VectorTask, levels: int, settings: LSSettings, seed: int, evaluations: int):
        super().__init__(settings, seed)
        self.start, self.levels, self.evaluations = np.asarray(task.start, np.int64), levels, evaluations
        self.k = max(1, int(round(settings.moves * self.start.size)))
        self.cur, self.cur_f = None, float("-inf")

    def done(self) -> bool:
        return self.told >= self.evaluations

    def ask(self):
        if self.cur is None:
            return self._ask([self.start])
        cand = self.cur.copy()
        idx = self.rng.choice(cand.size, self.k, replace=False)
        cand[idx] = (cand[idx] + self.rng.integers(1, self.levels, self.k)) % self.levels
        return self._ask([cand])

    def tell(self, results) -> None:
        f = float(self._told(results)[0])
        if self.cur is None or f >= self.cur_f:
            self.cur, self.cur_f = self._pending[0], f
        self.gb, self.gb_f = self.cur, self.cur_f
        self._record(self.cur_f)


# ---- the quantized-network search space (paper §4.1) ------------------------------------------

def binary_space(start: np.ndarray, lo: np.ndarray, hi: np.ndarray, ratio: np.ndarray | None = None,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Candidates (n x 2): the start codes and one adjacent level each — towards the latent float
    value when ``ratio`` is given (second-nearest level), else in a random direction."""
    if ratio is not None:
        step = np.where(ratio >= start, 1, -1)
    else:
        step = rng.choice(np.array([-1, 1]), start.size)
    nb = start + step
    nb = np.where((nb < lo) | (nb > hi), start - step, nb)
    return np.stack([start, nb], axis=1).astype(np.int64)


def switch(levels_n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Q-Switch-s%: a level-index vector with ``fraction`` of the variables moved to level 1."""
    x = np.zeros(levels_n, dtype=np.int64)
    x[rng.choice(levels_n, int(round(fraction * levels_n)), replace=False)] = 1
    return x


def decode(cand: np.ndarray, x: np.ndarray) -> np.ndarray:
    return cand[np.arange(cand.shape[0]), x]
