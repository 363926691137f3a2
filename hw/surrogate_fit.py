"""Fitting the FINN surrogate's per-layer tables from FINN estimate samples.

Each FINN layer gets a *context*: the bit variables it can depend on by position in the
dataflow graph (a weighted layer: its weight bits, the bits of its input stream and its own
output bits; any other layer: the stream bits where it sits and the next weighted layer's weight
bits, which set a sliding window's SIMD; after the last weighted layer: that layer's weight and
input bits), plus T, the cycles FINN's final folding pass aims for, when the samples show more than
one (the target, or the slowest first-pass layer's cycles where FINN's second pass runs:
:mod:`bitswarm.hw.surrogate_folding`). The dependency is then verified on the data, per layer and
quantity: the smallest subset of the context of which the samples show the quantity to be an
exact function (with at least ``MIN_REPEATS`` samples that repeat a seen key, so that a
one-sample-per-key "function" does not count) is used as a lookup table. Keys never seen, and
quantities that are no exact function of the context (e.g. LUTs through FINN's data-dependent
accumulator width), come from a small least-squares fit on features shaped like FINN's formulas
(products of PE, SIMD, bit sums, 2^bits, FINN's BRAM rule), one per implementation variant
(e.g. MVAU_hls/MVAU_rtl). MVAU folding and cycles follow FINN's SetFolding rule wherever that rule
reproduces every sample of the layer.
"""

from __future__ import annotations

import itertools

import numpy as np

from bitswarm.hw.cost import Cost
from bitswarm.hw.finn_estimate import WEIGHTED_FINN_OPS
from bitswarm.hw.surrogate import LAYER_QUANTITIES, Surrogate, SurrogateLayer, Table, encode, variables
from bitswarm.hw.surrogate_folding import finn_weight_bits, first_pass_tables, fold_many, mvau_bram, mvau_shapes
from bitswarm.models import BitConfig, ZooEntry

MIN_REPEATS = 5
RIDGE = 1e-6


def finn_names(cost: Cost) -> list[str]:
    """The FINN node name of each per-layer entry (weighted layers are renamed to the model's names)."""
    folding = cost.meta.get("folding") or {}
    weighted = iter([n for n in folding if n.split("_")[0] in WEIGHTED_FINN_OPS])
    names = {lc.name for lc in cost.per_layer}
    return [lc.name if lc.name in folding or lc.name not in names else next(weighted, lc.name)
            for lc in cost.per_layer]


def contexts(entry: ZooEntry, layer_names: list[str]) -> list[tuple[tuple[int, ...], tuple[int, int, int]]]:
    """Per FINN layer: its context variable indices, and the (W, A, B) roles among them (-1: none)."""
    vi = {v: i for i, v in enumerate(variables(entry))}
    stream, a_in, weighted = -1, {}, []
    for s in entry.specs:
        if s.has_weight:
            a_in[s.name] = stream
            weighted.append(s.name)
        if s.has_act:
            stream = vi[(s.name, "a")]
    out, prev = [], None
    for name in layer_names:
        if name in a_in:
            w, a, b = vi[(name, "w")], a_in[name], vi.get((name, "a"), -1)
            out.append((_uniq(w, a, b), (w, a, b)))
            prev = name
            continue
        nxt = next((n for n in weighted[weighted.index(prev) + 1 if prev else 0:]), None)
        here = vi.get((prev, "a"), -1) if prev else (a_in[nxt] if nxt else -1)
        if nxt is None and prev is not None:  # after the last weighted layer: its accumulator (w, input bits)
            w, a = vi[(prev, "w")], a_in[prev]
            out.append((_uniq(w, a), (w, a, -1)))
        else:  # the stream bits here and the next weighted layer's weights (its SIMD sets a sliding window's)
            nw = vi[(nxt, "w")] if nxt else -1
            out.append((_uniq(here, nw), (nw, here, here)))
    return out


def _uniq(*v: int) -> tuple[int, ...]:
    return tuple(dict.fromkeys(i for i in v if i >= 0))


def _consistent_subset(keys: np.ndarray, y: np.ndarray) -> tuple[int, ...] | None:
    """Smallest column subset of ``keys`` of which ``y`` is an exact function, with enough repeats."""
    n, m = keys.shape
    for size in range(m + 1):
        for sub in itertools.combinations(range(m), size):
            groups: dict[tuple, float] = {}
            ok = True
            for row, val in zip(map(tuple, keys[:, sub]), y, strict=True):
                if groups.setdefault(row, val) != val:
                    ok = False
                    break
            if ok and n - len(groups) >= min(MIN_REPEATS, n - 1):
                return sub
    return None


def _features(cells: np.ndarray, roles: tuple[int, int, int], ctx: tuple[int, ...], pe, simd, weighted: bool,
              params: int, t_var: int) -> np.ndarray:
    col = {v: cells[:, j].astype(float) for j, v in enumerate(ctx)}
    w, a, b = (col.get(r, np.zeros(len(cells))) for r in roles)
    one = np.ones(len(cells))
    if weighted:  # FINN's MVAU LUT formula: multipliers, adder tree, accumulator, thresholds, LUTRAM weights
        w = finn_weight_bits(w, a).astype(float)  # the weights' width in FINN (1-bit: 2 wide unless XNOR)
        s = w + a
        wmem = params / (pe * simd)
        return np.stack([one, pe * simd * (2 * np.ceil(s / 6) - 1) * s, pe * (2 * simd - 1) * s, pe * s,
                         pe * (2 ** b - 1) * s, pe * (2 ** b - 1), pe * simd * w * np.ceil(wmem / 64), pe * simd * w,
                         mvau_bram(wmem, pe * simd * w)], axis=1)
    bits = [v for v in ctx if v != t_var]
    cols = [one, pe, simd, pe * simd] + [f(col[v]) for v in bits for f in (lambda x: x, lambda x: 2.0 ** x)]
    cols += [pe * simd * col[v] for v in bits] + ([col[t_var], 1.0 / col[t_var]] if t_var in ctx else [])
    return np.stack(cols, axis=1)


def _lstsq(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    scale = np.abs(f).max(axis=0)
    scale[scale == 0] = 1.0
    fs = f / scale
    coef = np.linalg.solve(fs.T @ fs + RIDGE * len(y) * np.eye(f.shape[1]), fs.T @ y)
    return coef / scale


def _grid(sizes: list[int]) -> np.ndarray:
    return np.array(list(itertools.product(*(range(k) for k in sizes))), dtype=np.int64).reshape(-1, len(sizes))


def _flat(cols: np.ndarray, sub, sizes: list[int]) -> np.ndarray:
    flat = np.zeros(len(cols), dtype=np.int64)
    for j in sub:
        flat = flat * sizes[j] + cols[:, j]
    return flat


def _lookup_table(idx_cols: np.ndarray, y: np.ndarray, sub: tuple[int, ...], sizes: list[int]):
    """Values over the grid of ``sub`` columns, NaN where a key was never seen."""
    vals = np.full(int(np.prod([sizes[j] for j in sub])), np.nan)
    vals[_flat(idx_cols, sub, sizes)] = y
    return vals


def _regression(feats, variant_grid, train_feats, variant, y) -> np.ndarray:
    """One least-squares fit per FINN implementation variant (e.g. MVAU_hls / MVAU_rtl), else one for all."""
    out = np.maximum(feats @ _lstsq(train_feats, y), 0.0)
    for v in np.unique(variant):
        rows = variant == v
        if rows.sum() >= min(8, len(y)) and len(np.unique(variant)) > 1:
            cells = variant_grid == v
            out[cells] = np.maximum(feats[cells] @ _lstsq(train_feats[rows], y[rows]), 0.0)
    return out


def fit_layer(name: str, op: str, ctx, roles, idx: np.ndarray, ys: dict[str, np.ndarray],
              pe: np.ndarray, simd: np.ndarray, variant: np.ndarray, values: list[np.ndarray],
              params: int, fold_fn=None) -> tuple[SurrogateLayer, dict]:
    sizes = [len(values[v]) for v in ctx]
    keys = idx[:, list(ctx)]
    grid = _grid(sizes)
    cells = np.stack([values[v][grid[:, j]] for j, v in enumerate(ctx)], axis=1)
    # folding and implementation variant over the grid: lookup where the data show a function, else the commonest
    fpe, fsimd, fvar = (_fill(keys, v, grid) for v in (pe, simd, variant))
    analytic = None
    if fold_fn is not None and roles[0] in ctx:  # FINN's own folding, where it agrees (T: one value if not in ctx)
        tcol = grid[:, ctx.index(len(values) - 1)] if len(values) - 1 in ctx else np.zeros(len(grid), dtype=np.int64)
        a = roles[1] if roles[1] in ctx else None
        mine = fold_fn(values[roles[0]][idx[:, roles[0]]], None if a is None else values[a][idx[:, a]], idx[:, -1])
        if np.array_equal(mine[:, 0], pe) and np.array_equal(mine[:, 1], simd):
            analytic = fold_fn(cells[:, ctx.index(roles[0])], None if a is None else cells[:, ctx.index(a)], tcol)
            fpe, fsimd = analytic[:, 0], analytic[:, 1]
            if not np.array_equal(mine[:, 2], ys["cycles"]):
                analytic = None
    mvau = op.split("_")[0] in WEIGHTED_FINN_OPS
    feats = _features(cells, roles, ctx, fpe, fsimd, mvau, params, len(values) - 1)
    train_cells = np.stack([values[v][idx[:, v]] for v in ctx], axis=1)
    train_feats = _features(train_cells, roles, ctx, pe, simd, mvau, params, len(values) - 1)
    tables, found = {}, {}
    for q in LAYER_QUANTITIES:
        y = ys[q]
        sub = _consistent_subset(keys, y)
        reg = _regression(feats, fvar, train_feats, variant, y)
        if q == "cycles" and analytic is not None:
            tables[q] = Table(tuple(ctx), tuple(analytic[:, 2].tolist()), "finn-folding")
        elif sub is not None and len(set(y.tolist())) == 1:
            tables[q] = Table((), (float(y[0]),), "constant")
        elif sub is not None:
            look = _lookup_table(keys, y, sub, sizes)
            if not np.isnan(look).any():
                tables[q] = Table(tuple(ctx[j] for j in sub), tuple(look.tolist()), "lookup")
            else:
                proj = _flat(grid, sub, sizes)
                vals = np.where(np.isnan(look[proj]), reg, look[proj])
                tables[q] = Table(tuple(ctx), tuple(vals.tolist()), "lookup")
        else:
            tables[q] = Table(tuple(ctx), tuple(reg.tolist()), "regression")
        found[q] = None if sub is None else [ctx[j] for j in sub]
    return SurrogateLayer(name, op, tables), found


def _fill(keys, v, grid):
    """A folding or variant value over the grid: exact where its key was seen; elsewhere what the seen keys
    below and above it agree on (when the value is monotone in the bits, as FINN's hls->rtl switch is), else
    the majority of the nearest seen keys."""
    sub = _consistent_subset(keys, v)
    if sub is None:
        return np.full(len(grid), float(np.bincount(v.astype(np.int64)).argmax()))
    seen = {tuple(r): val for r, val in zip(keys[:, sub].tolist(), v.tolist(), strict=True)}
    pts = np.array(list(seen), dtype=np.int64).reshape(len(seen), len(sub))
    vals = np.array(list(seen.values()))
    cells = grid[:, list(sub)]
    le = (pts[None, :, :] <= cells[:, None, :]).all(axis=2)  # seen key i is below cell g
    ge = (pts[None, :, :] >= cells[:, None, :]).all(axis=2)
    mono = all(vals[i] <= vals[j] for i in range(len(pts)) for j in range(len(pts)) if (pts[i] <= pts[j]).all())
    dist = np.abs(cells[:, None, :] - pts[None, :, :]).sum(axis=2)
    out = np.empty(len(grid))
    for g in range(len(grid)):
        lo = vals[le[g]].max() if mono and le[g].any() else None
        hi = vals[ge[g]].min() if mono and ge[g].any() else None
        if lo is not None and lo == hi:
            out[g] = lo
        else:
            near = vals[dist[g] == dist[g].min()]
            uniq, counts = np.unique(near, return_counts=True)
            out[g] = uniq[counts.argmax()]
    return out


def fit(entry: ZooEntry, board, policy: str, choices, samples: list[tuple[BitConfig, Cost]]) -> tuple[Surrogate, dict]:
    """Fit a surrogate to ``samples``; also returns, per layer and quantity, the dependency the data showed.

    ``choices``: per variable its candidate bit-widths (or one set, narrowed per variable as a FINN-costed
    search narrows it: :func:`bitswarm.hw.calibrate.surrogate_choices`)."""
    from bitswarm.hw.calibrate import surrogate_choices

    choices = surrogate_choices(entry, choices)
    var = tuple(variables(entry))
    target = board.fpga.clock_mhz * 1e6 / float(policy.split(":")[1])
    shapes = mvau_shapes(entry)
    bounds = first_pass_tables(entry, shapes, choices, target)
    # T, what FINN's final pass folds for: the target, or the first pass's slowest cycles when the target is
    # out of reach (the second pass keeps that layer as it is), so the slowest cycles floored at the target
    t = np.maximum(np.array([c.values["cycles"] for _, c in samples], dtype=float), target)
    t_values = np.unique(t)
    probe = Surrogate(entry.name, board.name, "", 1.0, policy, choices, var, (), {},
                      t_values=tuple(t_values.tolist()), bottleneck=bounds, t_floor=target)
    idx = probe._index(encode(entry, [b for b, _ in samples]))
    t_pass, t_idx = probe.first_pass(idx), np.searchsorted(t_values, t)
    t_map = tuple((float(k), int(np.bincount(t_idx[t_pass == k]).argmax())) for k in np.unique(t_pass))
    idx = np.concatenate([idx, t_idx[:, None]], axis=1)
    values = [np.array(c, dtype=float) for c in choices] + [t_values]
    layers, deps = _fit_layers(entry, samples, idx, values, shapes)
    totals = {"uram": float(np.mean([c.values.get("uram", 0.0) for _, c in samples]))}
    f = board.fpga
    from bitswarm.cachekey import entry_digest, tool_versions

    sur = Surrogate(entry.name, board.name, f.part, f.clock_mhz, policy, choices, var, tuple(layers), totals, {}, {},
                    bit_layers(entry), tuple(t_values.tolist()), bounds, target, t_map, tuple(entry.input_shape),
                    entry_digest(entry), tool_versions("finn-plus", "qonnx", "brevitas"))
    t_hat = np.asarray(sur.t_values)[sur.t_index(idx[:, :-1])]
    deps["_slowest_layer_T_exact_on_train"] = float(np.mean(t_hat == t))
    return sur, deps


def _fit_layers(entry: ZooEntry, samples, idx: np.ndarray, values: list[np.ndarray], shapes: dict):
    """Every FINN layer's tables (in the samples' layer order) and the dependencies the data showed."""
    nvar, folding_target = len(values) - 1, values[-1].tolist()
    fnames = [dict(zip([lc.name for lc in c.per_layer], finn_names(c), strict=True)) for _, c in samples]
    names = list(dict.fromkeys(n for f in fnames for n in f))
    ctxs = [((*ctx, nvar) if len(folding_target) > 1 else ctx, roles) for ctx, roles in contexts(entry, names)]
    params = {s.name: s.params for s in entry.specs}
    label = [":".join(v) for v in variables(entry)] + ["T"]
    layers, deps = [], {}
    for li, name in enumerate(names):
        per = [{lc.name: lc for lc in c.per_layer}.get(name) for _, c in samples]
        ys = {q: np.array([p.values.get(q, 0.0) if p else 0.0 for p in per]) for q in LAYER_QUANTITIES}
        fn = [f.get(name, "") for f in fnames]
        fold = [(c.meta.get("folding") or {}).get(n, {}) for (_, c), n in zip(samples, fn, strict=True)]
        pe = np.array([f.get("PE", 1) for f in fold], dtype=float)
        simd = np.array([f.get("SIMD", 1) for f in fold], dtype=float)
        kinds = sorted({n.rsplit("_", 1)[0] for n in fn})
        variant = np.array([kinds.index(n.rsplit("_", 1)[0]) for n in fn], dtype=float)
        shape = shapes.get(name)
        fold_fn = None if shape is None else (lambda w, a, j, shape=shape: fold_many(shape, w, a, j, folding_target))
        lay, found = fit_layer(name, "/".join(kinds), ctxs[li][0], ctxs[li][1], idx, ys, pe, simd, variant,
                               values, params.get(name, 0), fold_fn)
        layers.append(lay)
        deps[name] = {q: (None if v is None else [label[i] for i in v]) for q, v in found.items()}
    return layers, deps


def bit_layers(entry: ZooEntry) -> tuple[tuple[int, int, int, int], ...]:
    vi = {v: i for i, v in enumerate(variables(entry))}
    stream, out = -1, []
    for s in entry.specs:
        if s.has_weight and s.macs:
            out.append((vi[(s.name, "w")], stream, s.macs, s.params))
        if s.has_act:
            stream = vi[(s.name, "a")]
    return tuple(out)
