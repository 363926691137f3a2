"""BBPSO-Quantizer (and Kennedy's plain BBPSO) as ask/tell searchers over a :class:`Space`.

Readings chosen where the paper is garbled or silent (documented in docs/SEARCH.md):

* **Eq. 7** is applied in the *index space* of the sorted candidate set:
  ``x = ceil((Pb + Gb) / 2) + ceil(G(0, 1) * |Pb - Gb|)`` with probability 0.5, else ``Pb``;
  the result is clipped to ``[0, len(candidates) - 1]``.
* **Eq. 5** as printed, ``β / (1 + (exp(-2α x) - α))`` with ``x`` the min-max normalised Eq. 6
  norm, is not a bounded score; we read it as the logistic ``β / (1 + exp(-α (2x - 1)))``
  (the ``- α`` inside the exponent), which maps the least important layer to about
  ``β / (1 + e^α)`` and the most important to about ``β / (1 + e^-α)``. Layer-importance-guided
  initialisation (-IN) then draws index ``round(L * (K - 1) * 2 / β' + G(0, σ))``, centred on the
  importance, so important layers start with more bits.
* **Eq. 2** (plain BBPSO) as printed: ``G((Pb+Gb)/2, |Pb-Gb|)`` with probability 0.5, else ``Pb``,
  rounded and clipped.
* Similarity screening (-SCP): a position evaluated before is never evaluated again; its stored
  result is used. Without it, duplicates are evaluated again and cost budget.
* Local search (-LSP): every ``γ`` iterations each ``Pb`` gets ``R`` random positions changed to
  another candidate; the result replaces ``Pb`` by Deb's rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bitswarm.search.deb import deb_better
from bitswarm.search.searcher import BestMixin
from bitswarm.search.space import Position, Space


@dataclass(frozen=True)
class BBPSOSettings:
    particles: int = 15  # Table 4
    iterations: int = 20  # Table 4
    importance_init: bool = True  # -IN switches this off
    screening: bool = True  # -SCP
    local_search: bool = True  # -LSP
    gamma: int = 5  # local search every γ iterations
    r_changes: int = 2  # R positions changed by the local search
    alpha: float = 4.0
    beta: float = 1.0
    update: str = "eq7"  # "eq7" (BBPSO-Quantizer) or "eq2" (Kennedy's BBPSO, rounded)


def random_position(space: Space, rng: np.random.Generator) -> Position:
    """A uniform position: each variable uniform over its own candidates, then the space's rules."""
    highs = set(space.highs)
    high = highs.pop() + 1 if len(highs) == 1 else np.asarray(space.highs) + 1  # scalar: the old stream
    return space.clip(rng.integers(0, high, space.dim))


def layer_importance(norms: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Eq. 5 (logistic reading) of the Eq. 6 norms, one value per variable."""
    span = norms.max() - norms.min()
    x = (norms - norms.min()) / span if span > 0 else np.full_like(norms, 0.5)
    return beta / (1.0 + np.exp(-alpha * (2 * x - 1)))


class BBPSO(BestMixin):
    """Ask/tell: ``ask()`` -> positions to evaluate; ``tell(results)`` with (fitness, violation) each."""

    def __init__(self, space: Space, settings: BBPSOSettings, seed: int, importance: np.ndarray | None = None):
        self.space, self.s, self.seed = space, settings, seed
        self.importance = importance
        self.t = 0  # 0 = initialisation, then 1..T
        self.phase = "init"
        self.pb: list[Position] = []
        self.pb_res: list[tuple[float, float]] = []
        self.gb: Position | None = None
        self.gb_res = (float("-inf"), float("inf"))
        self._pending: list[Position] = []

    def _rng(self, tag: int) -> np.random.Generator:
        """Per-(iteration, phase) stream: proposals never depend on evaluation timing."""
        return np.random.default_rng([self.seed, self.t, tag])

    def done(self) -> bool:
        return self.t > self.s.iterations

    def ask(self) -> list[Position]:
        if self.phase == "init":
            self._pending = self._initial(self._rng(0))
        elif self.phase == "move":
            self._pending = [self._move(i, self._rng(1 + i)) for i in range(self.s.particles)]
        else:  # local search on every Pb
            self._pending = [self._perturb(i, self._rng(10_000 + i)) for i in range(self.s.particles)]
        return list(self._pending)

    def tell(self, results: list[tuple[float, float]]) -> None:
        if self.phase == "init":
            self.pb, self.pb_res = list(self._pending), list(results)
        else:
            for i, (pos, res) in enumerate(zip(self._pending, results, strict=True)):
                if deb_better(res[0], res[1], *self.pb_res[i]):
                    self.pb[i], self.pb_res[i] = pos, res
        for pos, res in zip(self.pb, self.pb_res, strict=True):
            if self.gb is None or deb_better(res[0], res[1], *self.gb_res):
                self.gb, self.gb_res = pos, res
        self._advance()

    def _advance(self) -> None:
        if self.phase == "move" and self.s.local_search and self.t % self.s.gamma == 0:
            self.phase = "local"
            return
        self.t += 1
        self.phase = "move"

    # ---- position generators -------------------------------------------------------------
    def _initial(self, rng) -> list[Position]:
        k = np.asarray(self.space.highs, float)
        if self.s.importance_init and self.importance is not None:
            centre = self.importance / max(self.importance.max(), 1e-12) * k
            return [self.space.clip(centre + rng.normal(0, np.maximum(1.0, k / 4), self.space.dim))
                    for _ in range(self.s.particles)]
        return [random_position(self.space, rng) for _ in range(self.s.particles)]

    def _move(self, i: int, rng) -> Position:
        pb, gb = np.asarray(self.pb[i], float), np.asarray(self.gb, float)
        out = []
        for j in range(self.space.dim):
            if self.s.update == "eq7":
                take = rng.random() > 0.5
                v = math.ceil((pb[j] + gb[j]) / 2) + math.ceil(rng.normal() * abs(pb[j] - gb[j])) if take else pb[j]
            else:
                take = rng.random() < 0.5
                v = rng.normal((pb[j] + gb[j]) / 2, abs(pb[j] - gb[j])) if take else pb[j]
            out.append(v)
        return self.space.clip(out)

    def _perturb(self, i: int, rng) -> Position:
        new = list(self.pb[i])
        for j in rng.choice(self.space.dim, size=min(self.s.r_changes, self.space.dim), replace=False):
            others = [c for c in range(self.space.highs[j] + 1) if c != new[j]]
            if others:
                new[j] = int(rng.choice(others))
        return self.space.clip(new)


class RandomSearch(BestMixin):
    """Uniform random positions, ``particles`` per round, same budget accounting."""

    def __init__(self, space: Space, settings: BBPSOSettings, seed: int, importance=None):
        self.space, self.s, self.seed, self.t = space, settings, seed, 0
        self.gb, self.gb_res = None, (float("-inf"), float("inf"))
        self._pending: list[Position] = []

    def done(self) -> bool:
        return self.t > self.s.iterations

    def ask(self) -> list[Position]:
        rng = np.random.default_rng([self.seed, self.t])
        self._pending = [random_position(self.space, rng) for _ in range(self.s.particles)]
        return list(self._pending)

    def tell(self, results) -> None:
        for pos, res in zip(self._pending, results, strict=True):
            if self.gb is None or deb_better(res[0], res[1], *self.gb_res):
                self.gb, self.gb_res = pos, res
        self.t += 1
