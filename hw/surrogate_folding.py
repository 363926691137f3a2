"""FINN's folding and memory rules the surrogate reproduces (finn-plus 1.6.1), checked against the samples.

``SetFolding`` with a throughput target folds each MVAU by raising SIMD while the weight stream per PE
stays within ``mvau_wwidth_max`` and then PE; when the target is out of reach it folds every layer a second
time for the slowest first-pass layer's cycles T. The surrogate uses these rules only where they agree
with the FINN samples it is fitted on (:mod:`bitswarm.hw.surrogate_fit` checks it, per layer).
"""

from __future__ import annotations

import numpy as np

from bitswarm.hw.surrogate import Table, variables
from bitswarm.models import ZooEntry

WWIDTH_MAX = 36  # finn-plus SetFolding's mvau_wwidth_max default
AP_INT_MAX = 8191  # finn.util.basic.MAX_ALLOWED_AP_INT_W


def finn_weight_bits(w, a):
    """The width FINN gives an MVAU's weights: 1-bit (bipolar) weights are 2 bits wide unless the input is
    bipolar too (``a`` 1: FINN's XNOR-popcount MVAU, binary weights), as the FINN samples show."""
    w = np.asarray(w)
    return np.where((w == 1) & (np.asarray(a if a is not None else 0) != 1), 2, w)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def mvau_fold(mw: int, mh: int, vecs: int, w: int, target: float) -> tuple[int, int]:
    """FINN's SetFolding for one MVAU (internal_decoupled): SIMD up while the weight stream per PE stays
    <= mvau_wwidth_max, then PE up (stream <= AP_INT_MAX), until ``target`` cycles are met; (PE, SIMD)."""
    simd = pe = 1
    for d in _divisors(mw):
        prev, simd = simd, d
        if mh * (mw // simd) * vecs <= target:
            break
        if w * simd > WWIDTH_MAX:
            simd = prev
            break
    for d in _divisors(mh):
        prev, pe = pe, d
        if pe * simd * w > AP_INT_MAX:
            pe = prev
            break
        if (mh // pe) * (mw // simd) * vecs <= target:
            break
    return pe, simd


def mvau_shapes(entry: ZooEntry) -> dict[str, tuple[int, int, int]]:
    """``name -> (MW, MH, vectors per frame)`` of each dense weighted layer (from the model's weights)."""
    from torch import nn

    modules = dict(entry.build(entry.default_bits()).named_modules())
    out = {}
    for s in entry.specs:
        m = modules.get(s.name)
        if s.has_weight and s.params and isinstance(m, nn.Conv2d | nn.Linear) and getattr(m, "groups", 1) == 1:
            out[s.name] = (int(m.weight[0].numel()), int(m.weight.shape[0]), s.macs // s.params)
    return out


def input_vars(entry: ZooEntry) -> dict[str, int]:
    """Per weighted layer, the variable index of the activation bits streaming into it (-1: none)."""
    vi = {v: i for i, v in enumerate(variables(entry))}
    stream, out = -1, {}
    for s in entry.specs:
        if s.has_weight:
            out[s.name] = stream
        if s.has_act:
            stream = vi[(s.name, "a")]
    return out


def first_pass_tables(entry: ZooEntry, shapes: dict, choices, target: float) -> tuple[Table, ...]:
    """Per weighted layer, FINN's first-pass cycles over the candidates of its weight bits and of its input
    bits (which decide a 1-bit weight's width; ``choices``: per variable its candidates).

    When the fps target is out of reach (SIMD capped by weight bits), finn-plus folds every layer a second
    time for the slowest first-pass layer's cycles T; the per-layer tables then use T as a context variable."""
    vi, a_in = {v: i for i, v in enumerate(variables(entry))}, input_vars(entry)
    out = []
    for name, (mw, mh, vecs) in shapes.items():
        wv, av = vi[(name, "w")], a_in.get(name, -1)
        cyc = []
        for w in choices[wv]:
            for a in choices[av] if av >= 0 else (None,):
                pe, simd = mvau_fold(mw, mh, vecs, int(finn_weight_bits(w, a)), target)
                cyc.append(float((mh // pe) * (mw // simd) * vecs))
        out.append(Table((wv, av) if av >= 0 else (wv,), tuple(cyc), "first-pass"))
    return tuple(out)


def fold_many(shape, w: np.ndarray, a: np.ndarray | None, t_idx: np.ndarray, targets: list[float]) -> np.ndarray:
    """(PE, SIMD, cycles) of an MVAU for arrays of weight bits, input bits (None: no input quantizer) and T
    indices, as FINN's final folding."""
    mw, mh, vecs = shape
    memo: dict[tuple[int, int], tuple[int, int, int]] = {}
    out = np.zeros((len(w), 3))
    for i, (wb, j) in enumerate(zip(finn_weight_bits(w, a).tolist(), t_idx.tolist(), strict=True)):
        if (wb, j) not in memo:
            pe, simd = mvau_fold(mw, mh, vecs, int(wb), targets[j])
            memo[wb, j] = (pe, simd, (mh // pe) * (mw // simd) * vecs)
        out[i] = memo[wb, j]
    return out


def mvau_bram(omega: np.ndarray, width: np.ndarray) -> np.ndarray:
    """FINN's MVAU weight-memory BRAM18 estimate (RAMB18 in SDP modes, UG573) for depth and width."""
    c = np.ceil
    return np.select([width == 1, width == 2, width <= 4, width <= 9, (width <= 18) | (omega > 512)],
                     [c(omega / 16384), c(omega / 8192), c(omega / 4096) * c(width / 4), c(omega / 2048) * c(width / 9),
                      c(omega / 1024) * c(width / 18)], c(omega / 512) * c(width / 36))
