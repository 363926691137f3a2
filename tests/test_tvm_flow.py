"""TVM flow: QONNX -> QCDQ -> Relax -> library; x86 verified against PyTorch; ARM cross-compiled."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

pytest.importorskip("tvm")

from bitswarm.boards import CpuSpec, load_board  # noqa: E402
from bitswarm.errors import ConfigError, ToolMissingError  # noqa: E402
from bitswarm.hw.tvm_build import compile_tvm  # noqa: E402
from bitswarm.models import get_model  # noqa: E402
from bitswarm.models.export import export_qonnx  # noqa: E402

pytestmark = pytest.mark.tvm
RUNNER = Path(__file__).resolve().parents[1] / "hw" / "tvm_runner.py"


@pytest.fixture(scope="module")
def tfc_qonnx(tmp_path_factory):
    entry = get_model("tfc")
    bits = entry.uniform_bits(4, 4, keep_first_last=True)
    model = entry.build(bits).eval()
    path = tmp_path_factory.mktemp("tvm") / "tfc.qonnx.onnx"
    export_qonnx(model, entry.input_shape, path)
    return path, model


def _with_cpu(board, **changes):
    return dataclasses.replace(board, cpu=dataclasses.replace(board.cpu, **changes))


@pytest.mark.parametrize("lowering", ["qcdq", "float"])
def test_host_build_matches_pytorch(tfc_qonnx, tmp_path, lowering):
    path, model = tfc_qonnx
    r = compile_tvm(path, load_board("host"), tmp_path, torch_model=model, input_shape=(1, 28, 28),
                    lowering=lowering)
    assert r.lib_path.exists() and r.input_shape == (1, 1, 28, 28) and r.latency_ms > 0
    assert r.verified_against == "pytorch" and r.verified_max_abs_diff < 1e-3
    ops = {n.op_type for n in onnx.load(str(r.onnx_path)).graph.node}
    assert ("QuantizeLinear" in ops) == (lowering == "qcdq") and "Quant" not in ops
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["input_shape"] == [1, 1, 28, 28] and info["target"] == {"kind": "llvm"}
    assert not list(tmp_path.glob(".*tmp*"))
    run = subprocess.run([sys.executable, str(RUNNER), str(r.lib_path), "--repeat", "3", "--threads", "1"],
                         capture_output=True, text=True, timeout=120)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["output_shape"] == [1, 10] and result["latency_ms_median"] > 0 and result["threads"] == 1


def test_runner_reports_a_missing_library_on_one_line(tmp_path):
    run = subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "none.so"), "--shape", "1,4"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == f"tvm_runner: FileNotFoundError: no library at {tmp_path}/none.so"


def test_one_bit_and_float_layers_are_lowered(tmp_path):
    """1-bit weights (signed 1-bit Quant), 16-bit and float layers: lowered to float ONNX ops."""
    entry = get_model("tfc")
    from bitswarm.models import BitConfig

    bits = BitConfig.uniform(entry.specs, 4, 4, input_quant=(None, 2), fc1=(1, 16), fc2=(16, 32), fc3=(8, None))
    model = entry.build(bits).eval()
    path = tmp_path / "m.onnx"
    export_qonnx(model, entry.input_shape, path)
    r = compile_tvm(path, load_board("host"), tmp_path / "out", torch_model=model)
    assert r.verified_max_abs_diff < 1e-3


@pytest.mark.skipif(shutil.which("arm-linux-gnueabihf-g++") is None, reason="needs g++-arm-linux-gnueabihf")
def test_pynq_z2_cross_compiles_to_an_arm_library(tfc_qonnx, tmp_path):
    r = compile_tvm(tfc_qonnx[0], load_board("pynq-z2"), tmp_path)
    head = r.lib_path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and head[18] == 40  # e_machine EM_ARM
    assert r.verified_max_abs_diff is None and r.target["mcpu"] == "cortex-a9"


def test_missing_cross_compiler_is_one_clear_error(tfc_qonnx, tmp_path):
    board = _with_cpu(load_board("pynq-z2"), cross_compiler="no-such-arm-g++")
    with pytest.raises(ToolMissingError, match="cross compiler 'no-such-arm-g\\+\\+' .* not found"):
        compile_tvm(tfc_qonnx[0], board, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_target_kind_is_one_clear_error(tfc_qonnx, tmp_path):
    board = _with_cpu(load_board("host"), tvm_target={"kind": "fpga9000"})
    with pytest.raises(ConfigError, match="cpu.tvm_target.kind.*unknown TVM target kind 'fpga9000'.*allowed: llvm"):
        compile_tvm(tfc_qonnx[0], board, tmp_path / "out")
    assert isinstance(board.cpu, CpuSpec) and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_tuning_applies_meta_schedule_and_stays_correct(tmp_path):
    """--tune on a one-Gemm ONNX model (one tuning task): tuned, verified, and a tuning database written."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [w])
    path = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    cache = tmp_path / "cache"  # the first build tunes into the cache (each tuning run costs minutes here)
    r = compile_tvm(path, load_board("host"), tmp_path / "out", tune=True, tune_trials=4, tune_cache=cache)
    assert r.tuned and r.verified_max_abs_diff < 1e-4 and not r.tuning_reused
    # the tuned and the default-schedule libraries are both timed; the faster one is the build's library
    t = json.loads((tmp_path / "out" / "model.json").read_text())["tuning"]
    assert r.tuning_kept == ("tuned" if t["tuned_ms"] <= t["default_schedule_ms"] else "default")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.so")) == ["model.so"]
    kept = list((cache / "tvm-tuning").glob("*/database_tuning_record.json"))
    assert len(kept) == 1 and kept[0].stat().st_size > 0 and not (tmp_path / "out" / "model.tuning").exists()
    # the second build applies the kept database without tuning
    second = compile_tvm(path, load_board("host"), tmp_path / "b", tune=True, tune_trials=4, tune_cache=cache)
    assert second.tuning_reused and second.verified_max_abs_diff < 1e-4
    assert list((cache / "tvm-tuning").glob("*/database_tuning_record.json")) == kept


def test_tuning_a_cross_target_is_one_clear_error(tfc_qonnx, tmp_path):
    from bitswarm.hw.tvm_tune import TvmTuneUnavailableError

    if shutil.which("arm-linux-gnueabihf-g++") is None:
        pytest.skip("needs g++-arm-linux-gnueabihf")
    with pytest.raises(TvmTuneUnavailableError, match="board pynq-z2's target is not this CPU"):
        compile_tvm(tfc_qonnx[0], load_board("pynq-z2"), tmp_path, tune=True)
