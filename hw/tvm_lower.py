"""QONNX -> ONNX that TVM's frontend imports: QCDQ where possible, plain float ops elsewhere.

* Quantizers whose inputs are all constants (weights, 32-bit bias ``Quant``) are folded into
  float initializers with qonnx' own executor (the quantized values, stored as float32: TVM
  computes in float32 anyway, and folding saves a runtime dequantization of every weight).
* 2..8-bit ``Quant`` nodes on activations become QuantizeLinear -> Clip -> DequantizeLinear
  (qonnx' QuantToQCDQ).
* The rest (1-bit ``BipolarQuant``/signed 1-bit ``Quant``, 9..32-bit ``Quant``, non-ROUND
  rounding) become the float formula of qonnx' ``int_quant``: Div, Add, Clip, Round/Floor/Ceil,
  Sub, Mul (bipolar: Where(x >= 0, 1, -1) * scale).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitswarm.errors import BitswarmError

QUANT_OPS = ("Quant", "BipolarQuant")
_ROUNDING = {"ROUND": "Round", "HALF_EVEN": "Round", "FLOOR": "Floor", "CEIL": "Ceil"}


class LoweringError(BitswarmError):
    """A QONNX node TVM cannot import and bitswarm cannot lower."""


def _attr(node, name, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _fold_constant_quants(model):
    """Quant nodes with only constant inputs -> initializers (qonnx' executor computes them)."""
    from qonnx.core.onnx_exec import execute_node

    ctx = model.make_empty_exec_context()
    opset = model.model.opset_import[0].version
    done = []
    for n in model.graph.node:
        if n.op_type in QUANT_OPS and all(model.get_initializer(i) is not None for i in n.input):
            execute_node(n, ctx, model.graph, opset_version=opset)
            model.set_initializer(n.output[0], ctx[n.output[0]].astype(np.float32))
            done.append(n)
    for n in done:
        model.graph.node.remove(n)
    return model


def _lower_dynamic_quant(model, node) -> list:
    """The float ONNX nodes computing ``node`` (a Quant/BipolarQuant on a dynamic input)."""
    from onnx import helper
    from qonnx.custom_op.general.intquant import max_int, min_int

    x, scale, out, tag = node.input[0], node.input[1], node.output[0], node.name or node.output[0]

    def const(suffix, value):
        name = f"{tag}_{suffix}"
        model.set_initializer(name, np.asarray(value, dtype=np.float32))
        return name

    def t(suffix):
        return f"{tag}_{suffix}"

    bits = 1.0 if node.op_type == "BipolarQuant" else float(model.get_initializer(node.input[3]))
    signed = bool(_attr(node, "signed", 1))
    if node.op_type == "BipolarQuant" or (bits == 1 and signed):
        zp = const("zero", 0.0) if node.op_type == "BipolarQuant" else node.input[2]
        return [helper.make_node("Div", [x, scale], [t("div")]),
                helper.make_node("Add", [t("div"), zp], [t("y")]),
                helper.make_node("GreaterOrEqual", [t("y"), const("zero0", 0.0)], [t("ge")]),
                helper.make_node("Where", [t("ge"), const("one", 1.0), const("mone", -1.0)], [t("pm")]),
                helper.make_node("Mul", [t("pm"), scale], [out])]
    mode = str(_attr(node, "rounding_mode", "ROUND")).upper()
    if mode not in _ROUNDING:
        raise LoweringError(f"Quant node {tag}: rounding mode {mode} is not supported; allowed: "
                            + ", ".join(_ROUNDING))
    narrow, zp = bool(_attr(node, "narrow", 0)), node.input[2]
    lo, hi = float(min_int(signed, narrow, int(bits))), float(max_int(signed, narrow, int(bits)))
    return [helper.make_node("Div", [x, scale], [t("div")]),
            helper.make_node("Add", [t("div"), zp], [t("y")]),
            helper.make_node("Max", [t("y"), const("lo", lo)], [t("ylo")]),
            helper.make_node("Min", [t("ylo"), const("hi", hi)], [t("yc")]),
            helper.make_node(_ROUNDING[mode], [t("yc")], [t("yr")]),
            helper.make_node("Sub", [t("yr"), zp], [t("yz")]),
            helper.make_node("Mul", [t("yz"), scale], [out])]


def _lower_remaining(model):
    graph = model.graph
    new_nodes = []
    for n in graph.node:
        if n.op_type in QUANT_OPS:
            new_nodes.extend(_lower_dynamic_quant(model, n))
        elif n.domain and n.domain not in ("", "ai.onnx"):
            raise LoweringError(f"node {n.name} ({n.domain}.{n.op_type}) has no ONNX equivalent TVM imports")
        else:
            new_nodes.append(n)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return model


LOWERINGS = ("qcdq", "float", "int")


def check_lowering(lowering: str) -> str:
    """``lowering`` if it is one of :data:`LOWERINGS`, else a ConfigError naming the allowed values."""
    if lowering not in LOWERINGS:
        from bitswarm.errors import ConfigError

        raise ConfigError("--lowering", "lowering", f"unknown lowering {lowering!r}", ", ".join(LOWERINGS))
    return lowering


def to_qcdq(src: str | Path, dst: str | Path, lowering: str = "qcdq") -> Path:
    """Write the TVM-importable ONNX of ``src`` (QONNX, QCDQ or plain ONNX) to ``dst``.

    ``lowering="float"`` skips QuantToQCDQ: every quantizer on a dynamic input becomes the float
    formula (same values; about as fast in TVM as QCDQ once weights are folded, see BENCHMARKS.md).
    ``lowering="int"`` is QCDQ with quantized Conv/Gemm/MatMul on integer codes (int32 sums, float
    requantization; :mod:`bitswarm.hw.tvm_int`).
    """
    check_lowering(lowering)
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.qonnx_to_qcdq import QuantToQCDQ

    dst = Path(dst)
    model = ModelWrapper(str(src))
    if any(n.op_type in QUANT_OPS for n in model.graph.node):
        if lowering == "int":  # weight codes and scales kept as DequantizeLinear before the folding
            from bitswarm.hw import tvm_int

            model = tvm_int.lower_weights(model)
        model = _fold_constant_quants(model)  # weights first: TVM computes in float32 anyway
        if lowering in ("qcdq", "int"):
            model = model.transform(QuantToQCDQ())
            model = _fold_constant_quants(model)
        if lowering == "int":
            model = tvm_int.lower_compute(model)
        model = _lower_remaining(model)
        model = model.transform(InferShapes())
    tmp = dst.with_suffix(".tmp")
    model.save(str(tmp))
    tmp.replace(dst)
    return dst
