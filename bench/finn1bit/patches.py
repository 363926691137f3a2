"""Local monkeypatches used by sweep.py to test candidate fixes (nothing here edits the project).

"extract_bipolar": a FINN-flow fix for a 1-bit (bipolar) INPUT quantizer. After step_tidy_up, every
    BIPOLAR MultiThreshold that no MatMul/Conv produces (i.e. a standalone one: the input
    quantizer) is rewritten to a BINARY MultiThreshold (out_scale 1, out_bias 0) followed by
    Mul(2) and Add(-1), exactly ExtractMultiThresholdScaleBias (finn/transformation/streamline/
    extract_multithreshold_scale_bias.py) but only for those nodes. FINN's own Streamline then moves
    the Mul/Add past the next MatMul / unpadded Conv and absorbs them into that layer's thresholds,
    so InferThresholdingLayer sees out_scale == 1.
    If the first weighted layer has 1-bit weights the MT is left alone (FINN's XNOR rewrite
    already handles that case: ConvertBipolarMatMulToXnorPopcount resets out_scale to 1).
"""

from __future__ import annotations


def _extract_standalone_bipolar(model):
    from finn.transformation.streamline.extract_multithreshold_scale_bias import ExtractMultiThresholdScaleBias
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    targets = []
    for n in model.graph.node:
        if n.op_type != "MultiThreshold":
            continue
        prod = model.find_producer(n.input[0])
        while prod is not None and prod.op_type in ("Reshape", "Transpose", "Flatten"):
            prod = model.find_producer(prod.input[0])
        if prod is not None and prod.op_type in ("MatMul", "Conv", "Gemm"):
            continue  # absorbed into its MVAU / VVAU
        if model.get_tensor_datatype(n.output[0]) != DataType["BIPOLAR"]:
            continue
        # leave it to FINN's XNOR rewrite when every consumer layer has bipolar weights
        cons = model.find_consumers(n.output[0]) or []
        while len(cons) == 1 and cons[0].op_type in ("Reshape", "Transpose", "Flatten"):
            cons = model.find_consumers(cons[0].output[0]) or []
        if cons and all(c.op_type in ("MatMul", "Conv") and
                        model.get_tensor_datatype(c.input[1]) == DataType["BIPOLAR"] for c in cons):
            continue
        targets.append(n.name)
    if not targets:
        return model
    # run the FINN transformation, then undo it on every MT that is not a target
    keep = {}
    for n in model.graph.node:
        if n.op_type == "MultiThreshold" and n.name not in targets:
            inst = getCustomOp(n)
            keep[n.name] = (inst.get_nodeattr("out_scale"), inst.get_nodeattr("out_bias"))
            inst.set_nodeattr("out_scale", 1.0)
            inst.set_nodeattr("out_bias", 0.0)
    model = model.transform(ExtractMultiThresholdScaleBias())
    for n in model.graph.node:
        if n.name in keep:
            inst = getCustomOp(n)
            inst.set_nodeattr("out_scale", keep[n.name][0])
            inst.set_nodeattr("out_bias", keep[n.name][1])
        if n.name in targets:
            getCustomOp(n).set_nodeattr("out_dtype", "BINARY")
    model = model.transform(InferShapes())
    model = model.transform(InferDataTypes())
    return model


def apply(name: str) -> None:
    if name != "extract_bipolar":
        raise ValueError(name)
    import finnrun

    steps_mod = finnrun._finn()["steps_mod"]
    orig = steps_mod.step_tidy_up

    def step_tidy_up(model, cfg):
        return _extract_standalone_bipolar(orig(model, cfg))

    steps_mod.step_tidy_up = step_tidy_up
