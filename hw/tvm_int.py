"""Integer compute lowering for TVM: quantized Conv/Gemm/MatMul of a QCDQ graph on integer codes.

Four qonnx transformations, applied by ``bitswarm.hw.tvm_lower.to_qcdq(..., lowering="int")``:

* :class:`WeightQuantToQDQ` (QONNX, before the weights are folded): a 2..8-bit weight ``Quant``
  (constant inputs, zero point 0) feeding Conv/Gemm/MatMul becomes its int8 codes and a
  (per-channel) ``DequantizeLinear``: the codes and scales survive the folding of constants.
* :class:`SinkDequant` (after qonnx' QuantToQCDQ): MaxPool/Reshape/Flatten/Transpose between an
  activation ``DequantizeLinear`` and the next layer run on the codes instead (per-tensor scale > 0:
  they commute with dequantization), so that the layer after them sees a QCDQ activation.
* :class:`QCDQToInteger`: a Conv/Gemm/MatMul whose activation is
  ``QuantizeLinear -> [Clip] -> DequantizeLinear`` (per tensor) and whose weight is such codes runs on
  the codes: int8/uint8 operands, int32 sums, then ``Cast`` to float, ``Mul`` by ``x_scale * w_scale``
  (per output channel) and ``Add`` of the bias. Gemm/MatMul become ONNX ``MatMulInteger`` (TVM's
  Relax frontend imports it); the frontend has no ``ConvInteger``, so a Conv becomes ``Cast`` to int32
  and a Conv on int32 tensors (outside the ONNX type constraints, but TVM imports it as an int32
  conv2d; onnxruntime cannot run that file).
* :class:`FoldWeightDequant`: weight codes left over (layers whose activation is not QCDQ, e.g.
  1-bit or float activations) -> float initializers again.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.transformation.base import Transformation

INT_OPS = ("Conv", "Gemm", "MatMul")


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _const(model, name: str):
    """The value of ``name`` when it is an initializer or a ``Constant`` node's output, else None."""
    if not name:
        return None
    value = model.get_initializer(name)
    if value is not None:
        return value
    node = model.find_producer(name)
    if node is not None and node.op_type == "Constant":
        return numpy_helper.to_array(_attr(node, "value"))
    return None


def _channel_axis(scale: np.ndarray) -> int | None:
    """The one axis a per-channel scale varies along (None: per tensor); -1 when it is not per channel."""
    axes = [i for i, d in enumerate(scale.shape) if d > 1]
    return None if not axes else axes[0] if len(axes) == 1 else -1


def _weight_codes(node, w, scale, zp, bits):
    """Integer codes of a weight ``Quant`` (or None when it is not a 2..8-bit zero-point-0 quantizer)."""
    from qonnx.custom_op.general.quant import quant

    signed, narrow = bool(_attr(node, "signed", 1)), bool(_attr(node, "narrow", 0))
    mode = str(_attr(node, "rounding_mode", "ROUND")).upper()
    if not 2 <= int(bits) <= 8 or np.any(zp != 0) or mode not in ("ROUND", "HALF_EVEN") or _channel_axis(scale) == -1:
        return None
    values = quant(w, scale, zp, bits, signed, narrow, mode)
    codes = np.round(values / scale)
    if not np.allclose(codes * scale, values, rtol=1e-5, atol=0):
        return None
    return codes.astype(np.int8 if signed else np.uint8)


class WeightQuantToQDQ(Transformation):
    """Weight ``Quant`` nodes of Conv/Gemm/MatMul -> int8 codes + ``DequantizeLinear`` (QONNX input)."""

    def apply(self, model):
        for i, node in enumerate(model.graph.node):
            inits = [model.get_initializer(n) for n in node.input]
            users = model.find_consumers(node.output[0]) or []
            if (node.op_type != "Quant" or any(v is None for v in inits) or not users
                    or any(u.op_type not in INT_OPS or list(u.input[1:2]) != [node.output[0]] for u in users)):
                continue
            w, scale, zp, bits = inits
            codes = _weight_codes(node, w, scale, zp, bits)
            if codes is None:
                continue
            axis, out = _channel_axis(scale), node.output[0]
            model.set_initializer(f"{out}_codes", codes)
            model.set_initializer(f"{out}_scale", scale.astype(np.float32).reshape(-1 if axis is not None else ()))
            model.set_initializer(f"{out}_zp", np.zeros(scale.size if axis is not None else (), codes.dtype))
            kw = {} if axis is None else {"axis": axis}
            dq = helper.make_node("DequantizeLinear", [f"{out}_codes", f"{out}_scale", f"{out}_zp"], [out],
                                  name=f"{node.name or out}_dq", **kw)
            model.graph.node.remove(node)
            model.graph.node.insert(i, dq)
            return model, True
        return model, False


def _activation(model, name):
    """(codes tensor, scale, zero-point tensor, DequantizeLinear) of a per-tensor QCDQ activation, or None."""
    dq = model.find_producer(name)
    if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
        return None
    src = model.find_producer(dq.input[0])
    if src is None or src.op_type not in ("Clip", "QuantizeLinear", *MOVES):
        return None
    scale, zp = _const(model, dq.input[1]), _const(model, dq.input[2])
    if scale is None or zp is None or scale.size != 1 or zp.size != 1:
        return None
    return dq.input[0], float(scale), dq.input[2] if np.any(zp != 0) else None, dq


MOVES = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze")


class SinkDequant(Transformation):
    """``DequantizeLinear -> MaxPool/Reshape/...`` -> ``MaxPool/Reshape/... -> DequantizeLinear`` (per tensor)."""

    def apply(self, model):
        for i, node in enumerate(model.graph.node):
            act = _activation(model, node.input[0]) if node.op_type in MOVES else None
            if act is None or act[1] <= 0 or (node.op_type == "MaxPool" and len(node.output) > 1):
                continue
            q, _, _, dq = act
            out = node.output[0]
            moved = helper.make_node(node.op_type, [q, *node.input[1:]], [f"{out}_q"], name=node.name,
                                     **{a.name: helper.get_attribute_value(a) for a in node.attribute})
            new_dq = helper.make_node("DequantizeLinear", [f"{out}_q", *dq.input[1:]], [out], name=f"{out}_dq")
            model.graph.node.remove(node)
            model.graph.node.insert(i, new_dq)
            model.graph.node.insert(i, moved)
            if not model.find_consumers(dq.output[0]) and dq.output[0] not in [o.name for o in model.graph.output]:
                model.graph.node.remove(dq)
            return model, True
        return model, False


def _weight(model, name):
    """(int codes, per-channel or scalar scale, DequantizeLinear) of weight codes, or None."""
    dq = model.find_producer(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    codes, scale = model.get_initializer(dq.input[0]), model.get_initializer(dq.input[1])
    zp = model.get_initializer(dq.input[2]) if len(dq.input) > 2 else None
    if codes is None or scale is None or (zp is not None and np.any(zp != 0)):
        return None
    return codes, scale, int(_attr(dq, "axis", 1)), dq


def _conv_nodes(model, node, q, x_zp, codes, tag):
    """Cast to int32 [minus the zero point], Conv on int32: the int32 sums ``tag + '_acc'``."""
    cast = helper.make_node("Cast", [q], [f"{tag}_xi"], to=TensorProto.INT32)
    nodes, x = [cast], f"{tag}_xi"
    if x_zp is not None:
        nodes += [helper.make_node("Cast", [x_zp], [f"{tag}_zpi"], to=TensorProto.INT32),
                  helper.make_node("Sub", [x, f"{tag}_zpi"], [f"{tag}_xz"])]
        x = f"{tag}_xz"
    model.set_initializer(f"{tag}_w", codes)
    nodes.append(helper.make_node("Cast", [f"{tag}_w"], [f"{tag}_wi"], to=TensorProto.INT32))
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    nodes.append(helper.make_node("Conv", [x, f"{tag}_wi"], [f"{tag}_acc"], **attrs))
    return nodes


def _matmul_nodes(model, node, q, x_zp, codes, tag):
    """``MatMulInteger`` of the activation codes and the [K, N] weight codes: ``tag + '_acc'``."""
    if node.op_type == "Gemm" and _attr(node, "transB", 0):
        codes = codes.T
    model.set_initializer(f"{tag}_w", np.ascontiguousarray(codes))
    inputs = [q, f"{tag}_w"] + ([x_zp] if x_zp is not None else [])
    return [helper.make_node("MatMulInteger", inputs, [f"{tag}_acc"])]


def _requantize(model, node, x_scale, w_scale, tag):
    """int32 sums -> float * (x_scale * w_scale) [+ bias] into the node's output."""
    conv = node.op_type == "Conv"
    rescale = (np.float64(x_scale) * w_scale.astype(np.float64)).astype(np.float32)
    model.set_initializer(f"{tag}_rescale", rescale.reshape(1, -1, 1, 1) if conv and rescale.size > 1 else rescale)
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    out = node.output[0]
    nodes = [helper.make_node("Cast", [f"{tag}_acc"], [f"{tag}_accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", [f"{tag}_accf", f"{tag}_rescale"], [f"{tag}_y" if bias else out])]
    if bias:
        b = _const(model, bias)
        model.set_initializer(f"{tag}_bias", b.reshape(1, -1, 1, 1) if conv else b)
        nodes.append(helper.make_node("Add", [f"{tag}_y", f"{tag}_bias"], [out]))
    return nodes


def _convertible(model, node) -> bool:
    """Plain Gemm (no transA, alpha = beta = 1) or any Conv/MatMul, with a constant bias if any."""
    const_bias = len(node.input) < 3 or not node.input[2] or _const(model, node.input[2]) is not None
    if node.op_type == "Gemm":
        plain = not _attr(node, "transA", 0) and _attr(node, "alpha", 1.0) == _attr(node, "beta", 1.0) == 1.0
        return plain and const_bias
    return const_bias


class QCDQToInteger(Transformation):
    """Quantized Conv/Gemm/MatMul of a QCDQ graph -> integer op (int32 sums) + float requantization."""

    def apply(self, model):
        for i, node in enumerate(model.graph.node):
            act = _activation(model, node.input[0]) if node.op_type in INT_OPS else None
            weight = _weight(model, node.input[1]) if act else None
            if weight is None or not _convertible(model, node):
                continue
            (q, x_scale, x_zp, act_dq), (codes, w_scale, axis, w_dq) = act, weight
            wanted = 1 if node.op_type == "MatMul" or (node.op_type == "Gemm" and not _attr(node, "transB", 0)) else 0
            if (w_scale.size > 1 and axis % codes.ndim != wanted) or (node.op_type != "Conv" and codes.ndim != 2):
                continue
            tag = f"{node.name or node.output[0]}_int"
            build = _conv_nodes if node.op_type == "Conv" else _matmul_nodes
            new = build(model, node, q, x_zp, codes, tag) + _requantize(model, node, x_scale, w_scale, tag)
            model.graph.node.remove(node)
            for k, n in enumerate(new):
                model.graph.node.insert(i + k, n)
            for dq in (act_dq, w_dq):
                if not model.find_consumers(dq.output[0]) and dq.output[0] not in [o.name for o in model.graph.output]:
                    model.graph.node.remove(dq)
            return model, True
        return model, False


class FoldWeightDequant(Transformation):
    """``DequantizeLinear`` of constant codes -> float32 initializer (the weights of layers left in float)."""

    def apply(self, model):
        for node in model.graph.node:
            vals = [model.get_initializer(n) for n in node.input]
            if node.op_type != "DequantizeLinear" or any(v is None for v in vals):
                continue
            codes, scale = vals[0], vals[1]
            zp = vals[2] if len(vals) > 2 else np.zeros((), codes.dtype)
            shape = [1] * codes.ndim
            if scale.size > 1:
                shape[int(_attr(node, "axis", 1)) % codes.ndim] = -1
            w = (codes.astype(np.float32) - zp.astype(np.float32).reshape(shape)) * scale.reshape(shape)
            model.set_initializer(node.output[0], w.astype(np.float32))
            model.graph.node.remove(node)
            return model, True
        return model, False


def integer_ops(model) -> list:
    """The integer compute nodes of a lowered model: MatMulInteger, and Conv whose weight is cast to int32."""
    def int_conv(n):
        w = model.find_producer(n.input[1])
        return w is not None and w.op_type == "Cast" and _attr(w, "to") == TensorProto.INT32

    return [n for n in model.graph.node if n.op_type == "MatMulInteger" or (n.op_type == "Conv" and int_conv(n))]


def lower_weights(model):
    """Before the constants are folded: weight quantizers -> codes + DequantizeLinear."""
    return model.transform(WeightQuantToQDQ())


def lower_compute(model):
    """After QuantToQCDQ: data movement on codes, integer layers, leftover weight codes folded to float."""
    from qonnx.transformation.general import RemoveUnusedTensors

    for t in (SinkDequant(), QCDQToInteger(), FoldWeightDequant(), RemoveUnusedTensors()):
        model = model.transform(t)
    return model
