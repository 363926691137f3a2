"""bitswarm's own FINN build steps and graph transformations (QONNX style: ``apply(model) -> (model, changed)``).

``SplitBipolarInputThreshold``: a 1-bit input quantizer becomes a bipolar MultiThreshold
(``out_scale 2, out_bias -1``) that no MatMul precedes, so it cannot be absorbed into an MVAU, and
finn-plus' ``InferThresholdingLayer`` refuses it ("MultiThreshold out_scale must be 1 for HLS
conversion"). Splitting it into a binary threshold (out_scale 1) followed by ``Mul(2)`` and
``Add(-1)`` - what FINN's ``ExtractMultiThresholdScaleBias`` does, for these nodes only - lets FINN's
own streamlining move the affine part past the next MatMul (or unpadded conv) into that layer's
thresholds. Left alone when every consumer has binary weights: FINN's XNOR rewrite handles that.
(Measured: bench/finn1bit/REPORT.md.)
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.transformation.base import Transformation

PASS_THROUGH = ("Reshape", "Transpose", "Flatten")


def _skip(model, node, up: bool):
    """The node past layout-only ops, upstream (producer) or downstream (consumers)."""
    if up:
        prod = model.find_producer(node.input[0])
        while prod is not None and prod.op_type in PASS_THROUGH:
            prod = model.find_producer(prod.input[0])
        return prod
    cons = model.find_consumers(node.output[0]) or []
    while len(cons) == 1 and cons[0].op_type in PASS_THROUGH:
        cons = model.find_consumers(cons[0].output[0]) or []
    return cons


def _is_target(model, node) -> bool:
    from qonnx.custom_op.registry import getCustomOp

    if node.op_type != "MultiThreshold" or model.get_tensor_datatype(node.output[0]) != DataType["BIPOLAR"]:
        return False
    prod = _skip(model, node, up=True)
    if prod is not None and prod.op_type in ("MatMul", "Conv", "Gemm"):
        return False  # absorbed into its MVAU, which takes a bipolar output as it is
    cons = _skip(model, node, up=False)
    if cons and all(c.op_type in ("MatMul", "Conv") and model.get_tensor_datatype(c.input[1]) == DataType["BIPOLAR"]
                    for c in cons):
        return False  # FINN's XNOR rewrite (ConvertBipolarMatMulToXnorPopcount) makes out_scale 1
    return getCustomOp(node).get_nodeattr("out_scale") != 1.0


class SplitBipolarInputThreshold(Transformation):
    def apply(self, model):
        from onnx import helper
        from qonnx.custom_op.registry import getCustomOp

        for i, node in enumerate(model.graph.node):
            if not _is_target(model, node):
                continue
            inst = getCustomOp(node)
            scale, bias = float(inst.get_nodeattr("out_scale")), float(inst.get_nodeattr("out_bias"))
            out = node.output[0]
            binary, scaled = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
            s_name, b_name = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
            model.set_initializer(s_name, np.asarray(scale, dtype=np.float32))
            model.set_initializer(b_name, np.asarray(bias, dtype=np.float32))
            node.output[0] = binary
            inst.set_nodeattr("out_scale", 1.0)
            inst.set_nodeattr("out_bias", 0.0)
            inst.set_nodeattr("out_dtype", "BINARY")
            model.graph.node.insert(i + 1, helper.make_node("Mul", [binary, s_name], [scaled]))
            model.graph.node.insert(i + 2, helper.make_node("Add", [scaled, b_name], [out]))
            model.set_tensor_datatype(binary, DataType["BINARY"])
            return _tidy(model), True
        return model, False


def _tidy(model):
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    return model.transform(InferShapes()).transform(InferDataTypes()).transform(GiveUniqueNodeNames())


def step_split_bipolar_input(model, cfg):
    """FINN build step (after ``step_tidy_up``): see :class:`SplitBipolarInputThreshold`."""
    return model.transform(SplitBipolarInputThreshold())
