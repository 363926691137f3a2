"""In-process FINN estimate runner that records WHERE a build fails.

Same export (bitswarm.flows.export.export_qonnx, seed-0 weights) and same DataflowBuildConfig
as hw/finn_worker.py::_build (estimate_only_dataflow_steps, pynq-z2 part/clock, target_fps),
but each FINN step is wrapped so a failure gives back: the step, the exception type/message,
the innermost finn/qonnx frame (file:function:line), the transformation class on the stack, and
the neighbourhood (producer / consumers) of the node named in the message, taken from the
model as it was handed to the failing step.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

_FINN = {}


def _finn():
    if _FINN:
        return _FINN
    import torch

    torch.set_num_threads(1)
    from bitswarm.env import apply_environment, process_environment_for_finn

    build_dir = Path(tempfile.gettempdir()) / "finn1bit-cache" / "finn_build"
    build_dir.mkdir(parents=True, exist_ok=True)
    apply_environment(process_environment_for_finn(build_dir))
    import finn.xsi as fx

    for name in fx._LAZY_NAMES:
        setattr(fx, name, None)
    import finn.builder.build_dataflow as build
    import finn.builder.build_dataflow_config as bc
    import finn.builder.build_dataflow_steps as steps_mod

    _FINN.update(build=build, bc=bc, steps_mod=steps_mod)
    return _FINN


def _neighbourhood(model, node_name: str) -> dict:
    node = next((n for n in model.graph.node if n.name == node_name), None)
    if node is None:
        return {}
    prod = model.find_producer(node.input[0])
    cons = model.find_consumers(node.output[0]) or []
    info = {"node": node.name, "op": node.op_type,
            "producer": None if prod is None else f"{prod.op_type}:{prod.name}",
            "consumers": [f"{c.op_type}:{c.name}" for c in cons],
            "in_dtype": str(model.get_tensor_datatype(node.input[0]).name),
            "out_dtype": str(model.get_tensor_datatype(node.output[0]).name)}
    if node.op_type == "MultiThreshold":
        from qonnx.custom_op.registry import getCustomOp

        inst = getCustomOp(node)
        info["out_scale"] = inst.get_nodeattr("out_scale")
        info["out_bias"] = inst.get_nodeattr("out_bias")
    if prod is not None and prod.op_type in ("MatMul", "Mul", "Add", "MaxPool", "MaxPoolNHWC", "Transpose"):
        # one more hop upstream, to see what separates it from a MatMul
        pp = model.find_producer(prod.input[0])
        info["producer_of_producer"] = None if pp is None else f"{pp.op_type}:{pp.name}"
        if prod.op_type == "MatMul":
            info["matmul_in_dtype"] = model.get_tensor_datatype(prod.input[0]).name
            info["matmul_w_dtype"] = model.get_tensor_datatype(prod.input[1]).name
    return info


def _innermost(tb) -> tuple[str, str]:
    frames = traceback.extract_tb(tb)
    lib = [f for f in frames if "/site-packages/finn/" in f.filename or "/site-packages/qonnx/" in f.filename]
    f = lib[-1] if lib else frames[-1]
    short = re.sub(r".*/site-packages/", "", f.filename)
    transf = [re.sub(r".*/site-packages/", "", x.filename) + ":" + x.name + ":" + str(x.lineno)
              for x in lib if x.name == "apply"]
    return f"{short}:{f.name}:{f.lineno}", " > ".join(transf)


def run_onnx(onnx: Path, out_dir: Path, target_fps: int = 10000) -> dict:
    F = _finn()
    bc, build, steps_mod = F["bc"], F["build"], F["steps_mod"]
    from bitswarm.boards import load_board

    f = load_board("pynq-z2").fpga
    fail: dict = {}

    def wrap(name):
        fn = getattr(steps_mod, name)

        def step(model, cfg):
            if name == "step_convert_to_hw":
                model.save(str(out_dir / "streamlined.onnx"))
            try:
                return fn(model, cfg)
            except Exception as e:  # noqa: BLE001
                where, transf = _innermost(e.__traceback__)
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                m = re.match(r"\s*([A-Za-z0-9_]+):", msg)
                fail.update(step=name, exc=type(e).__name__, msg=msg, where=where, transformation=transf,
                            node=_neighbourhood(model, m.group(1)) if m else {})
                model.save(str(out_dir / f"failed_input_{name}.onnx"))
                raise

        step.__name__ = name
        return step

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = bc.DataflowBuildConfig(
        output_dir=str(out_dir), synth_clk_period_ns=f.clock_period_ns, target_fps=target_fps,
        folding_config_file=None, board=f.finn_board, fpga_part=f.part,
        shell_flow_type=bc.ShellFlowType.VIVADO_ZYNQ, steps=[wrap(s) for s in bc.estimate_only_dataflow_steps],
        generate_outputs=[bc.DataflowOutputType.ESTIMATE_REPORTS])
    t0 = time.time()
    rc = build.build_dataflow_cfg(str(onnx), cfg)
    res = {"rc": rc, "seconds": round(time.time() - t0, 1)}
    if rc == 0:
        import json

        rep = out_dir / "report"
        res_json = json.loads((rep / "estimate_layer_resources.json").read_text())
        res["layers"] = [k for k in res_json if k != "total"]
        res["lut"] = res_json["total"].get("LUT")
    else:
        res["fail"] = fail
    return res


def numeric_check(qonnx_path: Path, streamlined_path: Path, input_shape, n: int = 4) -> float:
    """Max |streamlined FINN model - exported QONNX model| over n random inputs (qonnx executor)."""
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    a, b = ModelWrapper(str(qonnx_path)), ModelWrapper(str(streamlined_path))
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(n):
        x = (rng.random((1, *input_shape)) * 2 - 1).astype(np.float32)
        ya = execute_onnx(a, {a.graph.input[0].name: x})[a.graph.output[0].name]
        xb = x if tuple(b.get_tensor_shape(b.graph.input[0].name)) == x.shape else x.transpose(0, 2, 3, 1)
        yb = execute_onnx(b, {b.graph.input[0].name: xb})[b.graph.output[0].name]
        worst = max(worst, float(np.max(np.abs(ya.reshape(yb.shape) - yb))))
    return worst


def run_case(model_name: str, layers: dict, work: Path, keep: bool = False, post_build=None,
             check: bool = False) -> dict:
    import torch

    try:  # the project moved it during this investigation
        from bitswarm.models.export import export_qonnx
    except ImportError:
        from bitswarm.flows.export import export_qonnx
    from bitswarm.models import BitConfig, get_model

    entry = get_model(model_name)
    bits = BitConfig.from_dict({"layers": layers})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = entry.build(bits).eval()
    if post_build is not None:
        model = post_build(model).eval()
    case_dir = work / f"{model_name}-{bits.key()}"
    shutil.rmtree(case_dir, ignore_errors=True)
    case_dir.mkdir(parents=True)
    try:
        onnx = export_qonnx(model, entry.input_shape, case_dir / "model.onnx", verify=False).path
    except Exception as e:  # noqa: BLE001
        return {"rc": "export-failed", "fail": {"msg": f"{type(e).__name__}: {e}"}}
    res = run_onnx(onnx, case_dir / "build")
    streamlined = case_dir / "build" / "streamlined.onnx"
    if check and streamlined.exists():
        try:
            res["streamlined_vs_qonnx_maxdiff"] = numeric_check(onnx, streamlined, entry.input_shape)
        except Exception as e:  # noqa: BLE001
            res["streamlined_vs_qonnx_maxdiff"] = f"check failed: {type(e).__name__}: {e}"
    if res["rc"] == 0 and not keep:
        shutil.rmtree(case_dir, ignore_errors=True)
    else:
        res["dir"] = str(case_dir)
    return res
