"""The quantization grid of a Brevitas model's weights, as integer codes the searches move.

A weight layer with ``b``-bit narrow-range signed integer weights (``models/quant.py``) holds
``w = code * scale`` with ``code`` in ``[-(2^(b-1)-1), 2^(b-1)-1]`` and a per-output-channel
``scale``. :func:`extract_grids` reads every such layer's codes (nearest rounding of its
latent float weights) and scales; :func:`write_codes` writes codes back as on-grid float
weights, so the Brevitas quantizer reproduces exactly those codes (the model stays an
ordinary Brevitas model: trainable, exportable with ``export_qonnx``).

Only integer layers with 2..16 bits are searched; float (32) and 1-bit (binary, per-tensor
constant scale) layers are left alone.

:class:`Fitness` evaluates a code vector on a fixed subset of one split (accuracy, ties
broken by cross-entropy); :func:`ptq` quantizes a float model to a bit config by nearest
rounding with calibrated activation scales (post-training quantization, no gradient step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from brevitas import nn as qnn
from torch import nn

from bitswarm.data import Split, normalize

TIE_BREAK = 1e-6  # weight of -cross-entropy in the fitness: only breaks accuracy ties (< 1/100k)


@dataclass(frozen=True)
class Grid:
    """One searched weight layer: codes in [qmin, qmax] times a per-channel scale."""

    name: str
    scale: torch.Tensor  # broadcastable to the weight
    codes: torch.Tensor  # int64, weight shape: nearest rounding of the latent weights
    ratio: torch.Tensor  # float latent weight / scale (where between the levels it sits)
    qmax: int

    @property
    def qmin(self) -> int:
        return -self.qmax

    @property
    def levels(self) -> int:
        return 2 * self.qmax + 1

    @property
    def size(self) -> int:
        return self.codes.numel()


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, qnn.QuantConv2d | qnn.QuantLinear)]


def _int_bits(module: nn.Module) -> int | None:
    if not module.weight_quant.is_quant_enabled:
        return None
    bits = int(module.weight_quant.bit_width())
    return bits if 2 <= bits <= 16 else None


@torch.no_grad()
def init_weight_scales(model: nn.Module) -> None:
    """Brevitas initialises stats-based weight scales lazily (and leaves them out of the state dict
    until then); computing every quantized weight once makes them concrete."""
    for _, m in weight_layers(model):
        if m.weight_quant.is_quant_enabled:
            m.quant_weight()


@torch.no_grad()
def extract_grids(model: nn.Module) -> list[Grid]:
    """The integer weight layers of ``model`` with their current (nearest-rounding) codes."""
    out = []
    for name, m in weight_layers(model):
        bits = _int_bits(m)
        if bits is None:
            continue
        qw = m.quant_weight()
        scale = qw.scale.detach().clone()
        out.append(Grid(name, scale, qw.int().long().clone(), (m.weight / scale).detach().clone(),
                        2 ** (bits - 1) - 1))
    return out


@torch.no_grad()
def write_codes(model: nn.Module, grids: list[Grid], codes: list[torch.Tensor]) -> None:
    """Set each grid layer's weight to ``code * scale`` (on the grid, so quantization is exact)."""
    modules = dict(model.named_modules())
    for g, c in zip(grids, codes, strict=True):
        modules[g.name].weight.copy_(c.to(torch.float32) * g.scale)


def flatten(codes: list[torch.Tensor]) -> np.ndarray:
    return np.concatenate([c.reshape(-1).numpy() for c in codes]).astype(np.int64)


def unflatten(flat: np.ndarray, grids: list[Grid]) -> list[torch.Tensor]:
    out, i = [], 0
    for g in grids:
        out.append(torch.from_numpy(np.ascontiguousarray(flat[i:i + g.size])).reshape(g.codes.shape))
        i += g.size
    return out


def bounds(grids: list[Grid]) -> tuple[np.ndarray, np.ndarray]:
    """Per-variable (qmin, qmax) of the flattened code vector."""
    lo = np.concatenate([np.full(g.size, g.qmin) for g in grids])
    hi = np.concatenate([np.full(g.size, g.qmax) for g in grids])
    return lo, hi


def on_grid(flat: np.ndarray, grids: list[Grid]) -> bool:
    lo, hi = bounds(grids)
    return bool(np.all(flat >= lo) and np.all(flat <= hi) and np.issubdtype(flat.dtype, np.integer))


class Fitness:
    """Accuracy of the model with a given code vector on ``split[:n]`` (ties: lower CE wins)."""

    def __init__(self, model: nn.Module, grids: list[Grid], split: Split, n: int | None = None,
                 batch_size: int = 2000):
        self.model, self.grids = model.eval(), grids
        sub = split.subset(n)
        self.x = [normalize(sub.x[i:i + batch_size]) for i in range(0, len(sub), batch_size)]
        self.y = [sub.y[i:i + batch_size] for i in range(0, len(sub), batch_size)]
        self.n = len(sub)
        self.evaluations = 0

    @torch.no_grad()
    def scores(self, flat: np.ndarray) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) of ``flat``."""
        write_codes(self.model, self.grids, unflatten(flat, self.grids))
        correct, ce = 0, 0.0
        for x, y in zip(self.x, self.y, strict=True):
            out = self.model(x)
            correct += int((out.argmax(1) == y).sum())
            ce += float(nn.functional.cross_entropy(out, y, reduction="sum"))
        self.evaluations += 1
        return correct / self.n, ce / self.n

    def __call__(self, flat: np.ndarray) -> float:
        acc, ce = self.scores(flat)
        return acc - TIE_BREAK * ce


@torch.no_grad()
def ptq(qmodel: nn.Module, float_state: dict, calib: Split, n: int = 1000, batch_size: int = 250) -> nn.Module:
    """Post-training quantization: float weights, nearest rounding, activation scales calibrated."""
    from brevitas.graph.calibrate import calibration_mode

    from bitswarm.train import load_float_weights

    load_float_weights(qmodel, float_state)
    sub = calib.subset(n)
    qmodel.eval()
    with calibration_mode(qmodel):
        for i in range(0, len(sub), batch_size):
            qmodel(normalize(sub.x[i:i + batch_size]))
    init_weight_scales(qmodel)
    return qmodel.eval()
