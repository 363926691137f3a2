"""bitswarm's own BBPSO variant (``--algo bitswarm``, ours, not the paper's): importance from accuracy
sensitivity, an initial swarm repaired toward feasibility with the cost model, unbiased moves.

What the TFC benchmark showed about the faithful BBPSO-Quantizer (docs/SEARCH.md, BENCHMARKS.md):

* Eq. 6's importance (mean L2 norm of a layer's filters) grows with fan-in, so the costliest layer
  (TFC's fc0: 784 inputs, 85 % of the MACs) is the "most important" and starts with 7-8 bits; the
  initial swarm is then infeasible or pays with 1-2-bit layers elsewhere.
* Eq. 7's two ``ceil`` terms push every move up by about one candidate, toward infeasibility.

The variant changes exactly these things and keeps the rest (memory, local search every gamma, Deb's rule):

1. **Importance from accuracy**: each variable's post-training-quantization sensitivity (the accuracy
   lost when it alone takes its lowest candidates; :func:`bitswarm.search.sensitivity.ptq_sensitivity`,
   computed by :func:`bitswarm.search.api.start_prior`), mapped by Eq. 5 with a gentler range
   (``alpha = 1``), so the prior tilts the start rather than deciding it.
2. **Feasibility-repaired start**: each importance-centred initial position whose cost (the search's
   cost model, no training) violates a constraint is moved toward the cheapest corner along
   ``p_j(s) = round(p0_j * s ** w_j)``, ``w_j`` the cost the variable saves per accuracy it loses
   (its share of the bit operations / its sensitivity), relative to the geometric mean and clamped to
   [1/3, 3], so costly, cheap-to-lose variables give up bits first; ``s`` is the largest of a
   bisection's values whose position is feasible (:meth:`BitswarmPSO.repair`).
   Each particle draws its own exponents (``w_j`` times a factor in [0.5, 2]), so the repaired starts
   differ in *which* variables gave up bits.
3. **Unbiased moves**: Kennedy's Gaussian around the mean of Pb and Gb (Eq. 2), rounded, in each
   variable's own index range, with a floor of 0.3 candidates on its spread: once Pb = Gb in a
   variable, plain Eq. 2 never moves it again, and the swarm collapses onto its start.
4. **Trades as the local search** (:meth:`BitswarmPSO._perturb`): one variable up, the costliest others
   down until the cost model says feasible, so the periodic local search moves along the budget's edge.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bitswarm.models import ZooEntry
from bitswarm.search.bbpso import BBPSO, BBPSOSettings
from bitswarm.search.space import Position, Space, Variable

BISECTION_STEPS = 6
MIN_SPREAD = 0.3  # in candidate indices: a variable where Pb = Gb still moves by one with ~5 % per move
Probe = Callable[[Position], float]  # a position's constraint violation (0 = feasible), no training


def cost_weights(entry: ZooEntry, variables: tuple[Variable, ...]) -> np.ndarray:
    """Per variable, the MACs its bits multiply (Eq. 10's bit operations): a weight variable its own
    layer's, an activation variable the next weight layer's (the layer that reads it); mean 1."""
    specs = list(entry.specs)
    macs_w = {s.name: float(s.macs) for s in specs if s.has_weight}
    consumer: dict[str, float] = {}
    for i, s in enumerate(specs):
        nxt = next((t for t in specs[i + 1:] if t.has_weight and t.macs), None) if s.has_act else None
        consumer[s.name] = float(nxt.macs) if nxt is not None else 0.0
    raw = np.array([macs_w.get(n, 0.0) if k == "w" else consumer.get(n, 0.0) for n, k in variables])
    raw = np.maximum(raw, raw.max() * 1e-3 if raw.max() > 0 else 1.0)
    return raw / raw.mean()


class BitswarmPSO(BBPSO):
    """BBPSO-Quantizer with the four changes of the module docstring; ask/tell like :class:`BBPSO`."""

    #: Eq. 5's range for the sensitivity importance: 1 maps it to [0.27, 0.73] x beta (the paper's 4 gives
    #: [0.02, 0.98], which starts the least important layer at its lowest candidate whatever it costs)
    alpha = 1.0

    def __init__(self, space: Space, settings: BBPSOSettings, seed: int, importance: np.ndarray | None = None,
                 probe: Probe | None = None, weights: np.ndarray | None = None):
        super().__init__(space, replace(settings, update="eq2"), seed, importance)
        self.probe = functools.lru_cache(maxsize=None)(probe) if probe is not None else None
        logw = np.zeros(space.dim) if weights is None else np.log(np.maximum(np.asarray(weights, float), 1e-12))
        self.exponents = np.clip(np.exp(logw - logw.mean()), 1 / 3, 3.0)  # relative to the geometric mean

    def _initial(self, rng) -> list[Position]:
        starts = super()._initial(rng)
        jitter = np.random.default_rng([self.seed, 0, 99])  # per-particle exponents: diverse repaired starts
        return [self.repair(p, self.exponents * jitter.uniform(0.5, 2.0, self.space.dim)) for p in starts]

    def _scaled(self, p0: np.ndarray, s: float, exponents: np.ndarray) -> Position:
        return self.space.clip(p0 * s ** exponents)

    def _move(self, i: int, rng) -> Position:
        """Eq. 2 with a floor on the spread: where Pb and Gb agree, Kennedy's Gaussian has zero width and
        that variable never moves again (the swarm collapses onto its repaired start)."""
        pb, gb = np.asarray(self.pb[i], float), np.asarray(self.gb, float)
        take = rng.random(self.space.dim) < 0.5
        moved = rng.normal((pb + gb) / 2, np.maximum(np.abs(pb - gb), MIN_SPREAD))
        return self.space.clip(np.where(take, moved, pb))

    def _perturb(self, i: int, rng) -> Position:
        """The local search as a **trade**: one variable of Pb gains one candidate and, while the result
        violates a constraint (the probe: cost only), the variable with the largest cost weight that can
        still give up bits loses one (at most ``dim`` steps). A single raise from a point on the budget's
        edge is almost always infeasible, so BBPSO's random local search wastes it; TFC's best region
        (fc0's weights up, the input quantizer down: both multiply fc0's MACs) needs exactly this move."""
        if self.probe is None:
            return super()._perturb(i, rng)
        new, highs = list(self.pb[i]), self.space.highs
        up = [j for j in range(self.space.dim) if new[j] < highs[j]]
        if not up:
            return super()._perturb(i, rng)
        j = int(rng.choice(up))
        new[j] += 1
        for _ in range(self.space.dim):
            if self.probe(self.space.clip(new)) <= 0:
                break
            down = [k for k in range(self.space.dim) if k != j and new[k] > 0]
            if not down:
                break
            k = max(down, key=lambda k: (self.exponents[k], rng.random()))
            new[k] -= 1
        return self.space.clip(new)

    def repair(self, pos: Position, exponents: np.ndarray | None = None) -> Position:
        """``pos`` if feasible (or no probe), else the feasible point of largest ``s`` found by bisection
        on ``[0, 1]``; the cheapest corner when nothing on the path is feasible."""
        if self.probe is None or self.probe(pos) <= 0:
            return pos
        exponents = self.exponents if exponents is None else exponents
        p0 = np.asarray(pos, float)
        best = self._scaled(p0, 0.0, exponents)
        if self.probe(best) > 0:
            return best
        lo, hi = 0.0, 1.0
        for _ in range(BISECTION_STEPS):
            mid = (lo + hi) / 2
            cand = self._scaled(p0, mid, exponents)
            if self.probe(cand) <= 0:
                lo, best = mid, cand
            else:
                hi = mid
        return best
