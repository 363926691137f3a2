"""Brevitas -> QONNX export, verified on every export against PyTorch with qonnx's executor."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bitswarm.errors import BitswarmError


class ExportMismatchError(BitswarmError):
    """The exported QONNX model does not compute what the PyTorch model computes."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float


def export_qonnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path, *, verify: bool = True,
                 n_verify: int = 4, atol: float = 1e-4, seed: int = 0) -> ExportResult:
    """Export ``model`` (batch 1, float input in [-1, 1]) to a cleaned-up QONNX file.

    With ``verify``, ``n_verify`` fresh random inputs are run through qonnx's executor and
    PyTorch; a difference above ``atol`` raises :class:`ExportMismatchError`.
    """
    from brevitas.export import export_qonnx as brevitas_export_qonnx
    from qonnx.util.cleanup import cleanup

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    g = torch.Generator().manual_seed(seed)
    example = torch.rand(1, *input_shape, generator=g) * 2 - 1
    tmp = path.with_suffix(".tmp.onnx")
    with _quiet_exporter():
        brevitas_export_qonnx(model, input_t=example, export_path=str(tmp))
    cleanup(str(tmp), out_file=str(tmp))  # re-saved with its weights inside the .onnx
    Path(str(tmp) + ".data").unlink(missing_ok=True)  # the exporter's external-data side file
    diff = verify_qonnx(model, tmp, input_shape, n_verify, seed + 1) if verify else float("nan")
    if verify and diff > atol:
        tmp.unlink(missing_ok=True)
        raise ExportMismatchError(f"QONNX export of {type(model).__name__} differs from PyTorch by {diff:.3g} "
                                  f"(tolerance {atol:g}); nothing was written to {path}")
    tmp.replace(path)
    return ExportResult(path, diff)


@contextlib.contextmanager
def _quiet_exporter():
    """torch's ONNX exporter prints its progress (eight lines an export) and logs that torchvision is absent: a
    search that exports every candidate for FINN would print pages. Its errors still raise as they are."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def verify_qonnx(model: nn.Module, onnx_path: str | Path, input_shape: tuple[int, ...], n: int = 4,
                 seed: int = 1) -> float:
    """Max |QONNX - PyTorch| over ``n`` random inputs (qonnx's executor)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    wrapped = ModelWrapper(str(onnx_path))
    iname, oname = wrapped.graph.input[0].name, wrapped.graph.output[0].name
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _ in range(n):
        x = torch.rand(1, *input_shape, generator=g) * 2 - 1
        with torch.no_grad():
            ref = model(x).numpy()
        out = execute_onnx(wrapped, {iname: x.numpy()})[oname]
        worst = max(worst, float(np.max(np.abs(out - ref))))
    return worst
