"""A user's QONNX file in: read, made self-contained and cleaned up with qonnx, checked for FINN.

Files exported by Brevitas' own ``export_qonnx`` (or other tools) differ from bitswarm's export:
weights in an external ``.onnx.data`` side file, initializers listed among the graph inputs, a
newer opset. ``import_qonnx`` loads the weights, drops the initializer inputs, runs qonnx'
``cleanup`` (shape inference, constant folding, unique names) and writes one self-contained file.
For the FINN flow it refuses a model with no quantizer (a float ONNX: FINN would build nothing
from it) and one with operators FINN's flow does not map, naming them; every error names the file.
"""

from __future__ import annotations

from pathlib import Path

from bitswarm.errors import ConfigError

QUANT_OPS = ("Quant", "BipolarQuant", "Trunc", "IntQuant", "MultiThreshold")
#: ONNX operators FINN's streamlining and conversion to hardware layers map (with the quantizers)
FINN_OPS = frozenset({
    *QUANT_OPS, "Conv", "MatMul", "Gemm", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
    "Reshape", "Flatten", "Transpose", "Add", "Mul", "Sub", "Div", "Identity", "Pad", "Squeeze", "Unsqueeze",
    "Concat", "Constant", "Shape", "Gather", "HardTanh", "Clip", "Sign", "TopK", "Neg",
})
ALLOWED = ("a QONNX model (Quant/BipolarQuant nodes), e.g. from brevitas.export.export_qonnx or "
           "`bitswarm cluster|finetune --export`")


def _load(src: Path):
    import onnx

    if not src.is_file():
        raise ConfigError(str(src), "--qonnx", "no such file", ALLOWED)
    try:
        return onnx.load(str(src))  # external data (``model.onnx.data``) is read from the file's folder
    except Exception as e:  # onnx raises several types for a file that is not ONNX
        raise ConfigError(str(src), "--qonnx", f"not a readable ONNX model ({type(e).__name__}: {e})",
                          ALLOWED) from e


def _drop_initializer_inputs(model) -> int:
    inits = {i.name for i in model.graph.initializer}
    extra = [i for i in model.graph.input if i.name in inits]
    for i in extra:
        model.graph.input.remove(i)
    return len(extra)


def check_for_finn(model, src: Path) -> None:
    """One error naming what FINN cannot build from ``model``."""
    ops = [n.op_type for n in model.graph.node]
    if not any(op in QUANT_OPS for op in ops):
        raise ConfigError(str(src), "graph", "has no quantizer node (Quant/BipolarQuant/Trunc): a float ONNX, "
                          "which FINN cannot build an accelerator from", ALLOWED)
    bad = sorted({op for op in ops if op not in FINN_OPS})
    if bad:
        raise ConfigError(str(src), "graph", f"operators FINN's flow does not map: {', '.join(bad)}",
                          "the operators of quantized CNNs: " + ", ".join(sorted(FINN_OPS)))


def validate_qonnx(src: str | Path, for_finn: bool):
    """The loaded model (initializer inputs dropped) and its input dims, or one ConfigError naming ``src``;
    writes nothing (the deploy calls it before it creates any directory)."""
    src = Path(src)
    model = _load(src)
    _drop_initializer_inputs(model)
    if len(model.graph.input) != 1:
        raise ConfigError(str(src), "graph.input", f"{len(model.graph.input)} inputs", "one image input")
    shape = model.graph.input[0].type.tensor_type.shape.dim
    dims = [int(d.dim_value) for d in shape]
    if shape and shape[0].dim_param:  # FINN folds and reshapes for a fixed batch: a symbolic one fails deep inside
        raise ConfigError(str(src), "graph.input", f"symbolic batch dimension {shape[0].dim_param!r}",
                          "a fixed batch of 1 (export with a concrete input of shape (1, C, H, W))")
    if len(dims) not in (2, 4) or dims[0] != 1 or any(d <= 0 for d in dims[1:]):
        raise ConfigError(str(src), "graph.input", f"shape {dims}", "(1, C, H, W) or (1, features), static")
    if for_finn:
        check_for_finn(model, src)
    return model, dims


def import_qonnx(src: str | Path, dest: Path, for_finn: bool) -> list[int]:
    """Write a cleaned, self-contained copy of ``src`` to ``dest``; returns its input shape without batch."""
    import onnx
    from qonnx.util.cleanup import cleanup

    src = Path(src)
    model, dims = validate_qonnx(src, for_finn)
    tmp = dest.with_suffix(".import.onnx")
    try:
        onnx.save(model, str(tmp))
        cleanup(str(tmp), out_file=str(tmp))
        tmp.replace(dest)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(str(src), "graph", f"qonnx cleanup failed ({type(e).__name__}: {e})", ALLOWED) from e
    finally:
        tmp.unlink(missing_ok=True)
    return dims[1:]
