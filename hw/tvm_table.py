"""A calibrated per-layer TVM latency table: microsecond answers for a search, error reported.

TVM computes in float32 whatever the bit-widths (QDQ is dequantized), and the TVM flow folds
quantized weights into float constants at compile time (:mod:`bitswarm.hw.tvm_lower`), so
weight bits have no runtime term. What an activation's bit-width changes is the quantizer code
after the layer, which depends on how it is lowered, not on the exact width. Each layer's
activation bits therefore fall into a *lowering class*: ``float`` (32, no quantizer),
``bipolar`` (1), ``qcdq`` (2..7: QuantizeLinear-Clip-DequantizeLinear), ``qdq8`` (8: no Clip
needed), ``wide`` (9..16: the float formula). In the ``int`` lowering (the default of ``--cost tvm``) a layer
with 2..8-bit weights behind a 2..8-bit activation computes on integer codes: one more feature,
``layer:int``. The table is

    latency_ms(config) = base_ms + sum over layers of delta[layer, a-class] (+ delta[layer, int])

fitted by ridge-regularised least squares to latencies measured through RPC
(:class:`bitswarm.hw.cost_tvm.TvmLatencyCost`) on random configurations of the model at hand,
and its error (MAPE, max APE) is measured on held-out random configurations every time it is
calibrated. Per layer it reports ``base_ms`` split by MACs plus the layer's deltas.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bitswarm.atomic import write_json
from bitswarm.boards import Board
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Cost, LayerCost
from bitswarm.models import BitConfig, ZooEntry
from bitswarm.models.bitconfig import LayerBits


def bit_class(bits: int | None) -> str | None:
    if bits is None:
        return None
    if bits >= 32:
        return "float"
    if bits == 1:
        return "bipolar"
    if bits <= 7:
        return "qcdq"
    return "qdq8" if bits == 8 else "wide"


#: weight and input-activation bits a layer needs to run on integer codes in the ``int`` lowering
INT_BITS = range(2, 9)


def _features(entry: ZooEntry, bits: BitConfig, lowering: str = "qcdq") -> list[str]:
    """Per layer its activation's lowering class and, in the ``int`` lowering, ``int`` when the layer
    computes on integer codes (2..8-bit weights behind a 2..8-bit activation: :mod:`bitswarm.hw.tvm_int`)."""
    out, prev_a = [], None
    for s in entry.specs:
        b = bits[s.name]
        c = bit_class(b.a)  # weights are folded to float constants at compile time: no runtime term
        if c is not None and c != "float":  # float is the reference level of every layer
            out.append(f"{s.name}:a:{c}")
        if lowering == "int" and s.has_weight and b.w in INT_BITS and prev_a in INT_BITS:
            out.append(f"{s.name}:int")
        if s.has_act:
            prev_a = b.a
    return out


def random_bits(entry: ZooEntry, candidates: tuple[int, ...], rng: random.Random) -> BitConfig:
    layers = tuple((s.name, LayerBits(rng.choice(candidates) if s.has_weight else None,
                                      rng.choice(candidates) if s.has_act else None)) for s in entry.specs)
    return BitConfig(layers)


@dataclass(frozen=True)
class LatencyTable:
    model: str
    board: str
    target: dict
    base_ms: float
    deltas: dict[str, float]
    error: dict[str, float]  # held-out MAPE / max APE (%) and sample counts
    macs: dict[str, int]
    lowering: str = "qcdq"  # the TVM lowering it was measured with (files before session 10: qcdq)

    def predict_ms(self, entry: ZooEntry, bits: BitConfig) -> tuple[float, list[tuple[str, float]]]:
        total_macs = sum(self.macs.values()) or 1
        per = {name: self.base_ms * m / total_macs for name, m in self.macs.items()}
        for f in _features(entry, bits, self.lowering):
            per[f.split(":")[0]] += self.deltas.get(f, 0.0)
        return sum(per.values()), list(per.items())

    def predict(self, entry: ZooEntry, bits: BitConfig, board: Board) -> Cost:
        if (entry.name, board.name) != (self.model, self.board):
            raise ConfigError("--tvm-table", "model/board", f"the table is for {self.model} on {self.board}, "
                              f"not {entry.name} on {board.name}", "recalibrate for this model and board")
        total, per = self.predict_ms(entry, bits)
        return Cost("tvm-table", {"latency_ms": total}, tuple(LayerCost(n, {"latency_ms": v}) for n, v in per),
                    {"table_error": self.error})

    def save(self, path: str | Path) -> None:
        write_json(path, self.__dict__)

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except OSError as e:
            raise ConfigError(str(path), "-", f"cannot read the TVM latency table ({e.strerror})") from e
        except (json.JSONDecodeError, TypeError) as e:
            raise ConfigError(str(path), "-", f"not a TVM latency table ({e})",
                              "a file written by `bitswarm tvm calibrate`") from e


def fit(entry: ZooEntry, samples: list[tuple[BitConfig, float]], ridge: float = 1e-3,
        lowering: str = "qcdq") -> tuple[float, dict]:
    names = sorted({f for b, _ in samples for f in _features(entry, b, lowering)})
    col = {n: i for i, n in enumerate(names)}
    x = np.zeros((len(samples), len(names) + 1))
    x[:, -1] = 1.0
    for r, (b, _) in enumerate(samples):
        for f in _features(entry, b, lowering):
            x[r, col[f]] = 1.0
    y = np.array([v for _, v in samples])
    reg = ridge * np.eye(x.shape[1]) * float(np.mean(y) ** 2 or 1.0)
    reg[-1, -1] = 0.0  # the base latency is not shrunk
    coef = np.linalg.solve(x.T @ x + reg, x.T @ y)
    return float(coef[-1]), {n: float(coef[col[n]]) for n in names}


def ape_stats(pred: list[float], true: list[float]) -> dict[str, float]:
    ape = [abs(p - t) / t * 100 for p, t in zip(pred, true, strict=True)]
    return {"mape_pct": float(np.mean(ape)), "max_ape_pct": float(np.max(ape)), "n": len(ape)}


def calibrate(entry: ZooEntry, board: Board, cost_model, n_train: int = 24, n_test: int = 12, seed: int = 0,
              candidates: tuple[int, ...] | None = None, progress=None) -> LatencyTable:
    """Measure ``n_train + n_test`` random configurations through ``cost_model``, fit, report held-out error."""
    rng = random.Random(seed)
    cands = tuple(candidates or board.bit_candidates)
    configs = [random_bits(entry, cands, rng) for _ in range(n_train + n_test)]
    samples = []
    for b in configs:
        samples.append((b, cost_model(entry, b, board)["latency_ms"]))
        if progress:
            progress(len(samples), len(configs))
    train, test = samples[:n_train], samples[n_train:]
    lowering = getattr(cost_model, "lowering", "qcdq")
    base, deltas = fit(entry, train, lowering=lowering)
    table = LatencyTable(entry.name, board.name, dict(board.cpu.tvm_target), base, deltas, {},
                         {s.name: s.macs for s in entry.specs}, lowering)
    pred = [table.predict_ms(entry, b)[0] for b, _ in test]
    train_pred = [table.predict_ms(entry, b)[0] for b, _ in train]
    err = {**{f"test_{k}": v for k, v in ape_stats(pred, [t for _, t in test]).items()},
           **{f"train_{k}": v for k, v in ape_stats(train_pred, [t for _, t in train]).items()},
           "measured_ms_min": float(min(v for _, v in samples)), "measured_ms_max": float(max(v for _, v in samples))}
    return replace(table, error=err)
