"""A calibrated model of FINN's estimates: per-layer tables, answered in microseconds.

FINN's estimate of a layer depends on a few bit-widths around it (its weight bits, the bits of
the stream into it, its own output/threshold bits) and on its folding. The surrogate keeps, per
FINN layer and per quantity (lut, bram18, dsp, cycles), a dense table over the candidate values
of the layer's *context* bit variables, each over its own candidates (``finn_narrow``'s); prediction
is one gather per layer and a sum (cycles: the slowest layer; latency: the sum of layer cycles at
the board clock, as FINN's critical path), vectorised over a batch of configurations. How the
tables are filled (exact lookup where the data show a function of the context, regression on
FINN-shaped features elsewhere) is in :mod:`bitswarm.hw.surrogate_fit`. The paper's bit metrics
are computed exactly, also vectorised.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from bitswarm.atomic import write_json
from bitswarm.boards import Board
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Cost, LayerCost
from bitswarm.models import BitConfig, ZooEntry

FORMAT = "bitswarm-finn-surrogate"
VERSION = 2  # 2: per-variable candidates over FINN's 1..8 bits (1: one set of 2..16 bits)
LAYER_QUANTITIES = ("lut", "bram18", "dsp", "cycles")


def variables(entry: ZooEntry) -> list[tuple[str, str]]:
    """The configuration's bit variables in model order: ``(layer, "w"|"a")``."""
    out = []
    for s in entry.specs:
        if s.has_weight:
            out.append((s.name, "w"))
        if s.has_act:
            out.append((s.name, "a"))
    return out


def encode(entry: ZooEntry, configs: list[BitConfig]) -> np.ndarray:
    """Configurations as an integer array ``(n, variables)`` of bit-widths."""
    var = variables(entry)
    return np.array([[getattr(b[n], k) for n, k in var] for b in configs], dtype=np.int64).reshape(len(configs),
                                                                                                    len(var))


@dataclass(frozen=True)
class Table:
    """A quantity of one layer as a function of the bit variables ``vars`` (indices into the variables)."""

    vars: tuple[int, ...]
    values: tuple[float, ...]  # row-major over the candidates of each variable
    how: str  # "lookup" (exact where seen, regression elsewhere), "regression", "constant", "finn-folding"

    @cached_property
    def array(self) -> np.ndarray:
        return np.asarray(self.values)


@dataclass(frozen=True)
class SurrogateLayer:
    name: str
    op: str
    tables: dict[str, Table]


@dataclass(frozen=True)
class Surrogate:
    model: str
    board: str
    part: str
    clock_mhz: float
    policy: str  # the folding policy the samples were taken with, e.g. "fps:10000"
    choices: tuple[tuple[int, ...], ...]  # per variable (in ``variables`` order): its sorted bit-widths
    variables: tuple[tuple[str, str], ...]
    layers: tuple[SurrogateLayer, ...]
    totals: dict[str, float]  # quantities FINN reports only as totals (uram), constant over the samples
    error: dict = field(default_factory=dict)  # held-out and training error, per quantity
    correction: dict = field(default_factory=dict)  # quantity -> {"scale", "offset", ...} (hw.correction)
    bit_layers: tuple[tuple[int, int, int, int], ...] = ()  # (w var, act-in var or -1, macs, params)
    # FINN's two-pass folding: when the fps target is out of reach, every layer is folded again for the
    # slowest layer's cycles T (else T is the target). T = max of the target and a first-pass bound per layer;
    # tables may use T (as variable index len(variables), over t_values) like a bit variable.
    t_values: tuple[float, ...] = (0.0,)
    bottleneck: tuple[Table, ...] = ()  # per weighted layer: its first-pass cycles over its weight and input bits
    t_floor: float = 0.0  # the target's cycles per frame
    t_map: tuple[tuple[float, int], ...] = ()  # first-pass slowest cycles -> index into t_values (seen in samples)
    input_shape: tuple[int, ...] = ()  # the model's input (C, H, W) it was calibrated for
    model_digest: str = ""  # bitswarm.cachekey.entry_digest of the model it was calibrated on ("" in older files)
    tools: dict = field(default_factory=dict)  # finn-plus/qonnx/brevitas versions of the samples

    @property
    def candidates(self) -> tuple[int, ...]:  # every bit-width some variable was calibrated for
        return tuple(sorted({b for c in self.choices for b in c}))

    # ---- prediction -----------------------------------------------------------------------
    def _index(self, x: np.ndarray) -> np.ndarray:
        """Each variable's bit-width as the index into its own candidates."""
        pos = np.full((len(self.choices), max(max(self.candidates), int(x.max(initial=0))) + 1), -1, dtype=np.int64)
        for v, c in enumerate(self.choices):
            pos[v, list(c)] = np.arange(len(c))
        idx = np.where(x >= 0, pos[np.arange(len(self.choices))[None, :], np.maximum(x, 0)], -1)
        if (idx < 0).any():
            v = int(np.nonzero((idx < 0).any(axis=0))[0][0])
            bad = sorted(set(x[idx[:, v] < 0, v].tolist()))
            raise ConfigError(f"surrogate of {self.model}", ".".join(self.variables[v]),
                              f"bit-widths {bad} were not calibrated", ", ".join(map(str, self.choices[v])))
        return idx

    def sizes(self) -> list[int]:
        return [len(c) for c in self.choices] + [len(self.t_values)]

    def _gather(self, table: Table, idx: np.ndarray) -> np.ndarray:
        sizes = self.sizes()
        flat = np.zeros(len(idx), dtype=np.int64)
        for v in table.vars:
            flat = flat * sizes[v] + idx[:, v]
        return table.array[flat]

    def first_pass(self, idx: np.ndarray) -> np.ndarray:
        t = np.full(len(idx), self.t_floor)
        for table in self.bottleneck:
            t = np.maximum(t, self._gather(table, idx))
        return t

    def t_index(self, idx: np.ndarray) -> np.ndarray:
        """Index into ``t_values`` of each configuration's slowest-layer cycles (through the first pass)."""
        if not self.t_map:
            return np.zeros(len(idx), dtype=np.int64)
        keys = np.array([k for k, _ in self.t_map])
        vals = np.array([v for _, v in self.t_map], dtype=np.int64)
        t = self.first_pass(idx)
        return vals[np.abs(t[:, None] - keys[None, :]).argmin(axis=1)]

    def predict_layers(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Per-layer predictions, each ``(n, layers)``, before any correction."""
        idx = self._index(np.asarray(x, dtype=np.int64))
        idx = np.concatenate([idx, self.t_index(idx)[:, None]], axis=1)
        return {q: np.stack([self._gather(lay.tables[q], idx) for lay in self.layers], axis=1)
                for q in LAYER_QUANTITIES}

    def predict_many(self, x: np.ndarray, per: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """All quantities for a batch ``x`` (from :func:`encode`), each an array of length n."""
        x = np.asarray(x, dtype=np.int64)
        per = self.predict_layers(x) if per is None else per
        clk_ns = 1000.0 / self.clock_mhz
        out = {q: per[q].sum(axis=1) for q in ("lut", "bram18", "dsp")}
        out["cycles"] = per["cycles"].max(axis=1)
        out["latency_ms"] = per["cycles"].sum(axis=1) * clk_ns / 1e6
        out.update({q: np.full(len(x), v, dtype=float) for q, v in self.totals.items()})
        out = self.apply_correction(out)
        out["throughput_fps"] = 1e9 / (out["cycles"] * clk_ns)
        out.update(self.bit_metrics_many(x))
        return out

    def apply_correction(self, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for q, c in self.correction.items():
            if q in out:
                out[q] = out[q] * float(c["scale"]) + float(c.get("offset", 0.0))
        return out

    def bit_metrics_many(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Eq. 9-11 exactly as :func:`bitswarm.hw.cost_bitops.bit_metrics`, for a batch."""
        bops = np.zeros(len(x))
        wbits = np.zeros(len(x))
        ops = params = 0.0
        for wv, av, macs, n_params in self.bit_layers:
            act = x[:, av] if av >= 0 else 32
            bops = bops + act * x[:, wv] * macs
            wbits = wbits + x[:, wv] * n_params
            ops += macs
            params += n_params
        wavg = wbits / params if params else np.zeros(len(x))
        return {"avg_bits": np.sqrt(bops / ops) if ops else np.zeros(len(x)), "weight_avg_bits": wavg,
                "compression_ratio": np.where(wavg > 0, 32.0 / np.where(wavg > 0, wavg, 1), 0.0),
                "bops": bops, "weight_bits": wbits}

    def predict(self, entry: ZooEntry, bits: BitConfig, board: Board, source: str = "") -> Cost:
        self.check_for(entry, board, source or "surrogate")
        x = encode(entry, [bits])
        per = self.predict_layers(x)
        vals = {q: float(v[0]) for q, v in self.predict_many(x, per).items()}
        layers = tuple(LayerCost(lay.name, {q: float(per[q][0, i]) for q in LAYER_QUANTITIES})
                       for i, lay in enumerate(self.layers))
        return Cost("surrogate", vals, layers, {"policy": self.policy, "surrogate_error": self.error,
                                                "correction": self.correction})

    def check_for(self, entry: ZooEntry, board: Board, source: str) -> None:
        from bitswarm.cachekey import entry_digest, tool_versions

        f = board.fpga
        for fld, mine, theirs in (("model", self.model, entry.name), ("board", self.board, board.name),
                                  ("part", self.part, f.part if f else None),
                                  ("clock_mhz", self.clock_mhz, f.clock_mhz if f else None),
                                  ("variables", [list(v) for v in self.variables],
                                   [list(v) for v in variables(entry)]),
                                  ("input_shape", list(self.input_shape or entry.input_shape),
                                   list(entry.input_shape)),
                                  # recorded since session 7; older files ("", {}) are not checked
                                  ("model_digest", self.model_digest, entry_digest(entry) if self.model_digest else ""),
                                  ("tools", self.tools, tool_versions(*self.tools) if self.tools else {})):
            if mine != theirs:
                raise ConfigError(source, fld, f"the surrogate was calibrated for {fld} {mine!r}, not {theirs!r}",
                                  _hint(entry.name, board.name, self.policy, entry.input_shape))

    # ---- file -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        write_json(path, {"format": FORMAT, "version": VERSION, **asdict(self)})


def load_surrogate(path: str | Path) -> Surrogate:
    """Read and validate a surrogate file; every problem is a ConfigError naming the file and field."""
    src = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(src, "-", f"cannot read the FINN surrogate ({e.strerror})",
                          "a file written by `bitswarm calibrate`") from e
    except json.JSONDecodeError as e:
        raise ConfigError(src, "-", f"not JSON ({e})", "a file written by `bitswarm calibrate`") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(src, "format", "not a FINN surrogate file", FORMAT)
    if data.get("version") != VERSION:
        v = data.get("version")
        old = "out of date" if isinstance(v, int) and v < VERSION else "not supported"
        raise ConfigError(src, "version", f"version {v!r} is {old} (this bitswarm reads version {VERSION}: "
                          "per-layer candidates over FINN's 1..8 bits); recalibrate",
                          _hint(data.get("model", "MODEL"), data.get("board", "BOARD"), str(data.get("policy", "")),
                                data.get("input_shape"), src))
    try:
        sur = _from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        where = str(e.args[0]) if isinstance(e, KeyError) else "-"
        raise ConfigError(src, where, f"malformed ({e})", "recalibrate with `bitswarm calibrate`") from e
    _check_tables(sur, src)
    return sur


def _hint(model: str, board: str, policy: str, input_shape, out: str | None = None) -> str:
    from bitswarm.hw.cost_surrogate import DEFAULT_FPS, calibrate_hint

    fps = policy.split(":")[1] if policy.startswith("fps:") and policy[4:].isdigit() else DEFAULT_FPS
    return calibrate_hint(str(model), str(board), int(fps), out, input_shape)


def _from_dict(d: dict) -> Surrogate:
    layers = tuple(SurrogateLayer(str(lay["name"]), str(lay["op"]),
                                  {q: _table(t) for q, t in lay["tables"].items()})
                   for lay in d["layers"])
    return Surrogate(str(d["model"]), str(d["board"]), str(d["part"]), float(d["clock_mhz"]), str(d["policy"]),
                     tuple(tuple(int(b) for b in c) for c in d["choices"]),
                     tuple((str(n), str(k)) for n, k in d["variables"]),
                     layers, {str(k): float(v) for k, v in d["totals"].items()}, dict(d.get("error", {})),
                     {str(q): dict(c) for q, c in d.get("correction", {}).items()},
                     tuple(tuple(int(v) for v in b) for b in d.get("bit_layers", ())),
                     tuple(float(v) for v in d["t_values"]), tuple(_table(t) for t in d["bottleneck"]),
                     float(d["t_floor"]), tuple((float(k), int(v)) for k, v in d["t_map"]),
                     tuple(int(v) for v in d.get("input_shape", ())), str(d.get("model_digest", "")),
                     {str(k): str(v) for k, v in d.get("tools", {}).items()})


def _table(t: dict) -> Table:
    return Table(tuple(int(v) for v in t["vars"]), tuple(float(v) for v in t["values"]), str(t["how"]))


def _check_table(t: Table, where: str, sizes: list[int], src: str) -> None:
    if any(not 0 <= v < len(sizes) for v in t.vars):
        raise ConfigError(src, f"{where}.vars", f"variable index out of range 0..{len(sizes) - 1}")
    need = int(np.prod([sizes[v] for v in t.vars]))
    if len(t.values) != need or not np.isfinite(t.values).all():
        raise ConfigError(src, f"{where}.values", f"{len(t.values)} values ({need} finite ones needed)")


def _check_tables(sur: Surrogate, src: str) -> None:
    nvar, sizes = len(sur.variables), sur.sizes()
    if len(sur.choices) != nvar or any(not c or list(c) != sorted(set(c)) or c[0] < 1 for c in sur.choices):
        raise ConfigError(src, "choices", "not one sorted, non-empty list of bit-widths per variable",
                          f"{nvar} lists of positive integers")
    if not sur.layers or not sur.t_values:
        raise ConfigError(src, "layers", "empty", "at least one FINN layer")
    for i, lay in enumerate(sur.layers):
        missing = [q for q in LAYER_QUANTITIES if q not in lay.tables]
        if missing:
            raise ConfigError(src, f"layers[{i}].tables", f"missing {', '.join(missing)}", ", ".join(LAYER_QUANTITIES))
        for q, t in lay.tables.items():
            _check_table(t, f"layers[{i}].tables.{q}", sizes, src)
    for i, t in enumerate(sur.bottleneck):
        _check_table(t, f"bottleneck[{i}]", sizes, src)
    if any(not 0 <= v < len(sur.t_values) for _, v in sur.t_map):
        raise ConfigError(src, "t_map", f"index out of range 0..{len(sur.t_values) - 1}")
    for j, (wv, av, _, _) in enumerate(sur.bit_layers):
        if not (0 <= wv < nvar and -1 <= av < nvar):
            raise ConfigError(src, f"bit_layers[{j}]", "variable index out of range")
    for q, c in sur.correction.items():
        if not isinstance(c.get("scale"), int | float):
            raise ConfigError(src, f"correction.{q}.scale", "missing or not a number")
