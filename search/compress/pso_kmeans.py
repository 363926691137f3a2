"""Pruning + PSO-initialised k-means + fixed-point conversion (Yang, Zhi, Tong, Algorithms 2023).

Per weight layer with ``b``-bit integer weights:

1. unstructured magnitude pruning: the ``sparsity`` share of smallest-|w| weights become 0;
2. k-means (Lloyd, 1-D) of the remaining weights into ``2^b`` clusters; the initial centroids
   come from PSO (each particle = a set of ``2^b`` centroids, fitness = mean squared
   quantization error of a weight sample; inertia 0.72, c1 = c2 = 1.49, Clerc-Kennedy values),
   or, for comparison, from ``random`` (2^b distinct weights drawn at random) or ``kmeans++``;
3. fixed-point conversion: every weight takes its centroid, then the layer is linearly quantized
   to ``b`` bits — signed narrow-range codes ``round(c / delta)`` with ``delta = max|c| / (2^(b-1)-1)``
   (a per-layer scale, written into the Brevitas layer so the model quantizes to exactly these
   codes; pruned weights are code 0). ``step="mse"`` (an addition, not from the paper) picks the
   delta with the least squared error instead, clipping the outermost centroids.

Only the abstract of the paper is available here: the PSO constants, swarm size, iterations,
the sample size and the per-tensor scale are this implementation's choices (NOTES.md). No
fine-tuning follows (the paper is post-training). Pure part: numpy arrays in, arrays out;
:func:`cluster_model` applies it to a Brevitas model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bitswarm.search.compress.vector_loop import VectorSearcher, VectorTask, drive

INITS = ("pso", "random", "kmeans++")
STEPS = ("max", "mse")


@dataclass(frozen=True)
class PSOParams:
    particles: int = 20
    iters: int = 40
    inertia: float = 0.72
    c1: float = 1.49
    c2: float = 1.49
    sample: int = 4096  # weights the PSO fitness is computed on


@dataclass(frozen=True)
class LayerResult:
    codes: np.ndarray  # int, weight shape, in [-qmax, qmax]
    delta: float  # fixed-point step: weight = code * delta
    centroids: np.ndarray  # sorted, length k
    inertia: float  # k-means SSE / n over the kept weights (before fixed-point conversion)
    sparsity: float  # realised share of zero codes


def magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """True for the weights kept (the largest 1 - sparsity share by magnitude)."""
    n_prune = int(round(sparsity * w.size))
    if n_prune <= 0:
        return np.ones(w.shape, dtype=bool)
    order = np.argsort(np.abs(w).reshape(-1), kind="stable")
    mask = np.ones(w.size, dtype=bool)
    mask[order[:n_prune]] = False
    return mask.reshape(w.shape)


def sse(x: np.ndarray, c: np.ndarray) -> float:
    """Mean squared distance of ``x`` to its nearest centroid in ``c``."""
    return float(np.min((x[:, None] - c[None, :]) ** 2, axis=1).mean())


class CentroidPSO(VectorSearcher):
    """Clustering PSO (Omran et al. style) over sets of ``k`` centroids in ``[lo, hi]``; fitness = -SSE."""

    def __init__(self, task: VectorTask, params: PSOParams, seed: int | np.random.Generator):
        super().__init__(params, seed)  # a Generator (k-means' own stream) is used as it is
        self.lo, self.hi, self.k = float(task.lo.min()), float(task.hi.max()), task.start.size
        self.vmax = 0.2 * (self.hi - self.lo)
        self.it, self.pos, self.vel = -1, None, None
        self.pbest = self.pbest_f = None
        self.g = 0

    def done(self) -> bool:
        return self.it >= self.s.iters

    def ask(self):
        p = self.s
        if self.pos is None:
            self.pos = self.rng.uniform(self.lo, self.hi, (p.particles, self.k))
            self.vel = np.zeros_like(self.pos)
        else:
            r1, r2 = self.rng.random(self.pos.shape), self.rng.random(self.pos.shape)
            self.vel = p.inertia * self.vel + p.c1 * r1 * (self.pbest - self.pos) + p.c2 * r2 * (self.pbest[self.g]
                                                                                                  - self.pos)
            self.vel = np.clip(self.vel, -self.vmax, self.vmax)
            self.pos = np.clip(self.pos + self.vel, self.lo, self.hi)
        return self._ask(self.pos)

    def tell(self, results) -> None:
        f = -self._told(results)  # SSE
        if self.pbest is None:
            self.pbest, self.pbest_f = self.pos.copy(), f
        else:
            better = f < self.pbest_f
            self.pbest[better], self.pbest_f[better] = self.pos[better], f[better]
        self.g = int(np.argmin(self.pbest_f))
        self.gb, self.gb_f = self.pbest[self.g].copy(), float(-self.pbest_f[self.g])
        self.it += 1


def pso_init(x: np.ndarray, k: int, rng: np.random.Generator, p: PSOParams = PSOParams()) -> np.ndarray:
    """Initial centroids by PSO over sets of ``k`` centroids (Omran et al. style clustering PSO)."""
    xs = x if x.size <= p.sample else rng.choice(x, p.sample, replace=False)
    lo, hi = float(xs.min()), float(xs.max())
    pso = CentroidPSO(VectorTask(np.zeros(k), np.full(k, lo), np.full(k, hi)), p, rng)
    drive(pso, lambda c: -float(np.min((xs[:, None] - c[None, :]) ** 2, axis=1).mean()), k, dtype=np.float64,
          desc="pso-kmeans")
    return np.sort(pso.best()[0])


def kmeanspp_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    c = [x[rng.integers(x.size)]]
    d2 = (x - c[0]) ** 2
    for _ in range(1, k):
        c.append(x[rng.choice(x.size, p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(x.size)])
        d2 = np.minimum(d2, (x - c[-1]) ** 2)
    return np.sort(np.array(c))


def random_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(x, k, replace=x.size < k))


def initial_centroids(x: np.ndarray, k: int, init: str, rng: np.random.Generator,
                      pso: PSOParams = PSOParams()) -> np.ndarray:
    if init == "pso":
        return pso_init(x, k, rng, pso)
    if init == "kmeans++":
        return kmeanspp_init(x, k, rng)
    if init == "random":
        return random_init(x, k, rng)
    raise ValueError(f"unknown init {init!r}; allowed {INITS}")


def kmeans_1d(x: np.ndarray, c: np.ndarray, iters: int = 100, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's algorithm in 1-D. Returns (sorted centroids, label per point). Empty clusters keep
    their centroid."""
    c = np.sort(c.astype(np.float64))
    for _ in range(iters):
        labels = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)
        sums = np.bincount(labels, weights=x, minlength=c.size)
        counts = np.bincount(labels, minlength=c.size)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if np.max(np.abs(new - c)) < tol:
            c = new
            break
        c = new
    order = np.argsort(c)
    c = c[order]
    return c, np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)


def fixed_point(values: np.ndarray, bits: int, step: str = "max") -> tuple[np.ndarray, float]:
    """Signed narrow-range ``bits``-bit codes and their step: values ~ codes * delta.

    ``step="max"``: delta = max|v| / qmax (no clipping); ``"mse"``: the delta among
    max|v|/qmax * {0.5, 0.52, ..., 1} with the least squared error (clips the largest values)."""
    qmax = 2 ** (bits - 1) - 1
    m = float(np.max(np.abs(values))) if values.size else 0.0
    if m <= 0:
        return np.zeros(values.shape, dtype=np.int64), 1.0
    cands = [m / qmax] if step == "max" else [m / qmax * s for s in np.linspace(0.5, 1.0, 26)]
    if step not in STEPS:
        raise ValueError(f"unknown step rule {step!r}; allowed {STEPS}")

    def err(d):
        return float(((np.clip(np.round(values / d), -qmax, qmax) * d - values) ** 2).sum())

    delta = min(cands, key=err)
    return np.clip(np.round(values / delta), -qmax, qmax).astype(np.int64), delta


def cluster_layer(w: np.ndarray, bits: int, sparsity: float, init: str, rng: np.random.Generator,
                  clusters: int | None = None, pso: PSOParams = PSOParams(), step: str = "max") -> LayerResult:
    """Steps 1-3 for one layer's float weights ``w``."""
    k = clusters or 2 ** bits
    mask = magnitude_mask(w, sparsity)
    kept = w[mask].astype(np.float64)
    c, labels = kmeans_1d(kept, initial_centroids(kept, k, init, rng, pso))
    inertia = float(((kept - c[labels]) ** 2).mean())
    clustered = np.zeros(w.shape)
    clustered[mask] = c[labels]
    codes, delta = fixed_point(clustered, bits, step)
    return LayerResult(codes, delta, c, inertia, float((codes == 0).mean()))


@torch.no_grad()
def set_layer(module: nn.Module, codes: np.ndarray, delta: float) -> None:
    """Give a Brevitas weight layer the per-tensor step ``delta`` and the weights ``codes*delta``."""
    scaling = module.weight_quant.tensor_quant.scaling_impl.value
    scaling.fill_(delta)
    actual = module.quant_weight().scale.detach()  # the stored value may be a threshold, not the step
    scaling.mul_(delta / actual.reshape(scaling.shape))
    module.weight.copy_(torch.from_numpy(codes).float() * delta)


def cluster_model(model: nn.Module, sparsity: float, init: str, seed: int = 0, clusters: int | None = None,
                  pso: PSOParams = PSOParams(), step: str = "max") -> dict[str, LayerResult]:
    """Apply to every integer weight layer of ``model`` (in place); returns per-layer results."""
    from bitswarm.search.compress import qgrid

    modules = dict(model.named_modules())
    rng = np.random.default_rng(seed)
    out = {}
    for g in qgrid.extract_grids(model):
        m = modules[g.name]
        res = cluster_layer(m.weight.detach().numpy().astype(np.float64), int(np.log2(g.qmax + 1)) + 1,
                            sparsity, init, rng, clusters, pso, step)
        set_layer(m, res.codes, res.delta)
        out[g.name] = res
    return out
