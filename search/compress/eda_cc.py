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
from tqdm import tqdm

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
               seed: int = 0, cc: bool = True, threshold: float = float("inf"), progress: bool = False) -> SearchResult:
    """Algorithm 2 (``cc=True``) or EDA w/o CC (``cc=False``) until ``budget`` FEs or ``threshold``."""
    rng = np.random.default_rng(seed)
    f0 = fitness(start)
    eda = EDA(start, f0, levels, params, rng)
    res = SearchResult(start, f0, f0, [(1, f0)])
    fes, gen = 1, 0
    conf = np.zeros(start.size)  # per variable: mean max_j P[i, j] over its last EDA run
    bar = tqdm(total=budget, desc="eda+cc" if cc else "eda", disable=None if progress else True, leave=False)
    while fes + params.pop <= budget and eda.best_f <= threshold:
        if gen and gen % params.gens == 0:
            if cc:  # group A: the beta*n fastest-converging variables, fixed at the best individual
                conf[eda.free] = eda.confidence / params.gens
                beta = rng.uniform(*params.beta)
                order = np.argsort(-conf, kind="stable")
                eda.reset(np.sort(order[int(beta * start.size):]))
            else:
                eda.reset(np.arange(start.size))
        xs = eda.ask()
        fs = np.array([fitness(x) for x in xs])
        eda.tell(xs, fs)
        fes += len(xs)
        gen += 1
        res.history.append((fes, eda.best_f))
        bar.update(len(xs))
    bar.close()
    res.best, res.best_fitness = eda.best, eda.best_f
    return res


def run_ga(fitness: Fitness, start: np.ndarray, levels: int, budget: int, seed: int = 0, pop: int = 20,
           init_flip: float = 0.05, mutation: float = 0.002, tournament: int = 2) -> SearchResult:
    """Generational GA with one elite; the initial population is ``start`` plus sigma-greedy samples."""
    rng = np.random.default_rng(seed)
    xs = sample(sigma_greedy(start, levels, 1 - init_flip), pop, rng)
    xs[0] = start
    fs = np.array([fitness(x) for x in xs])
    res = SearchResult(start, float(fs.max()), float(fs[0]), [(pop, float(fs.max()))])
    fes = pop
    while fes + pop - 1 <= budget:
        elite = int(np.argmax(fs))
        kids = [xs[elite].copy()]
        for _ in range(pop - 1):
            a, b = _tournament(xs, fs, tournament, rng), _tournament(xs, fs, tournament, rng)
            child = np.where(rng.random(a.size) < 0.5, a, b)
            flip = rng.random(a.size) < mutation
            child[flip] = (child[flip] + rng.integers(1, levels, flip.sum())) % levels
            kids.append(child)
        kf = np.array([fs[elite]] + [fitness(k) for k in kids[1:]])
        xs, fs = np.stack(kids), kf
        fes += pop - 1
        res.history.append((fes, float(fs.max())))
    res.best, res.best_fitness = xs[int(np.argmax(fs))], float(fs.max())
    return res


def _tournament(xs: np.ndarray, fs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    cand = rng.integers(0, len(xs), k)
    return xs[cand[np.argmax(fs[cand])]]


def run_local_search(fitness: Fitness, start: np.ndarray, levels: int, budget: int, seed: int = 0,
                     moves: float = 0.002) -> SearchResult:
    """(1+1) stochastic local search: change ``moves`` x n random variables, keep if not worse."""
    rng = np.random.default_rng(seed)
    best, best_f = start.copy(), fitness(start)
    res = SearchResult(start, best_f, best_f, [(1, best_f)])
    k = max(1, int(round(moves * start.size)))
    for fes in range(2, budget + 1):
        cand = best.copy()
        idx = rng.choice(start.size, k, replace=False)
        cand[idx] = (cand[idx] + rng.integers(1, levels, k)) % levels
        f = fitness(cand)
        if f >= best_f:
            best, best_f = cand, f
        res.history.append((fes, best_f))
    res.best, res.best_fitness = best, best_f
    return res


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
