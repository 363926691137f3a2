"""The deploy flow end to end on tiny data, with the FINN and TVM tools replaced by test doubles
(their own tests cover them); the package, report and manifest are real."""

import hashlib
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from bitswarm.boards import load_board
from bitswarm.env import Environment
from bitswarm.flows import deploy as D
from bitswarm.flows.steps import StepError
from bitswarm.hw.cost import Cost, LayerCost


@dataclass
class FakeFinn:
    out_dir: Path
    steps: list
    estimates: Cost
    missing_tool: str | None
    verification: dict | None = None


@dataclass
class FakeTvm:
    lib_path: Path
    target: dict
    input_shape: tuple
    verified_max_abs_diff: float | None
    seconds: float


@pytest.fixture
def doubles(monkeypatch):
    """Test doubles for flows.finn / flows.tvm (module seams of the deploy flow)."""
    def build_finn(qonnx, board, out_dir, **kw):
        out_dir.mkdir(parents=True)
        (out_dir / "estimate.json").write_text("{}")
        layers = (LayerCost("fc0", {"lut": 900.0, "bram18": 2.0, "cycles": 784.0}),
                  LayerCost("fc1", {"lut": 300.0, "bram18": 1.0, "cycles": 64.0}))
        est = Cost("finn-estimate", {"lut": 1200.0, "ff": 1500.0, "bram18": 3.0, "dsp": 0.0, "uram": 0.0,
                                     "cycles": 784.0, "latency_ms": 0.01}, layers)
        return FakeFinn(out_dir, [("estimate", 0.1)], est, "Vivado (vivado) is not installed: stopped after codegen")

    def compile_tvm(path, board, out_dir, *, input_shape, tune=False):
        out_dir.mkdir(parents=True)
        (out_dir / "model.so").write_bytes(b"\x7fELF")
        return FakeTvm(out_dir / "model.so", board.cpu.tvm_target, input_shape, None, 0.1)

    def package_native_runner(board, lib, host_lib, pkg, cache_dir, input_shape):
        (pkg / "runner" / "armv7").mkdir(parents=True, exist_ok=True)
        (pkg / "runner" / "armv7" / "runner").write_bytes(b"\x7fELF")
        return {"target": "armv7", "runner": "runner/armv7/runner", "checked": "fake"}

    monkeypatch.setitem(sys.modules, "bitswarm.flows.finn", types.SimpleNamespace(build_finn=build_finn))
    monkeypatch.setitem(sys.modules, "bitswarm.flows.cpu_package",
                        types.SimpleNamespace(package_native_runner=package_native_runner))
    monkeypatch.setitem(sys.modules, "bitswarm.hw.tvm_build",
                        types.SimpleNamespace(compile_tvm=compile_tvm, is_host_target=lambda target: False))


def _cfg(tmp_path, data_dir, **kw):
    env = Environment(data_dir=Path(data_dir), cache_dir=tmp_path / "cache", vivado=None, vitis_hls=None,
                      ray_address=None)
    bits = tmp_path / "bits.yaml"
    from bitswarm.models import get_model

    get_model("tfc").uniform_bits(2, 2).save(bits)
    base = dict(board=load_board("pynq-z2"), env=env, model="tfc", bits_file=str(bits), fp_epochs=1, qat_epochs=1,
                out_root=tmp_path / "deploy", run_id="r1", command="bitswarm deploy --test")
    return D.DeployConfig(**{**base, **kw})


def test_deploy_builds_a_complete_package(tmp_path, tiny_mnist_dir, doubles, monkeypatch):
    import bitswarm.workflow as W

    loads = []
    real = W.load_dataset
    monkeypatch.setattr(W, "load_dataset", lambda *a: loads.append(a) or real(*a))
    pkg = D.deploy(_cfg(tmp_path, tiny_mnist_dir))
    assert len(loads) == 1  # the dataset is read (and hashed) once per deploy, not once per step
    assert pkg == tmp_path / "deploy" / "pynq-z2" / "r1"
    for f in ("bits.yaml", "model.qonnx.onnx", "finn/estimate.json", "tvm-pynq-z2/model.so", "tvm-host/model.so",
              "runner/tvm_runner.py", "summary.json", "report.html", "report.md", "report.json", "manifest.json"):
        assert (pkg / f).exists(), f
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["sha256"]["model.qonnx.onnx"] == hashlib.sha256((pkg / "model.qonnx.onnx").read_bytes()).hexdigest()
    assert manifest["versions"]["brevitas"].startswith("0.13")
    summary = json.loads((pkg / "summary.json").read_text())
    assert 0 <= summary["accuracy"]["test"] <= 1 and summary["finn"]["missing_tool"].startswith("Vivado")
    html = (pkg / "report.html").read_text()
    assert "<svg" in html and "Utilisation" in html and "Per-layer bit-widths" in html
    assert not list((tmp_path / "deploy" / "pynq-z2").glob(".partial-*"))


def test_failed_or_interrupted_deploy_leaves_no_package_and_resumes(tmp_path, tiny_mnist_dir, doubles, monkeypatch):
    """A failed or interrupted deploy keeps only its hidden ``.partial-<id>``; the same command (even with
    another run id, as the CLI's timestamped default gives) resumes it at the failed step."""
    good = sys.modules["bitswarm.hw.tvm_build"].compile_tvm

    def broken(*a, **k):
        raise RuntimeError("arm-linux-gnueabihf-g++ not found")

    sys.modules["bitswarm.hw.tvm_build"].compile_tvm = broken
    with pytest.raises(StepError, match="step 'tvm' failed: arm-linux-gnueabihf-g.*the same command resumes"):
        D.deploy(_cfg(tmp_path, tiny_mnist_dir))
    board_dir = tmp_path / "deploy" / "pynq-z2"
    assert [p.name for p in board_dir.iterdir()] == [".partial-r1"]

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    sys.modules["bitswarm.hw.tvm_build"].compile_tvm = interrupted
    with pytest.raises(KeyboardInterrupt):
        D.deploy(_cfg(tmp_path, tiny_mnist_dir))
    assert [p.name for p in board_dir.iterdir()] == [".partial-r1"]

    ran = []  # the finished steps are not run again
    monkeypatch.setattr(D, "STEPS", [D.Step(s.name, (lambda st, c, _n=s.name: ran.append(_n) or st)
                                            if s.name in ("bits", "train", "export", "finn") else s.fn)
                                     for s in D.STEPS])
    sys.modules["bitswarm.hw.tvm_build"].compile_tvm = good
    pkg = D.deploy(_cfg(tmp_path, tiny_mnist_dir, run_id="another-id"))
    assert ran == [] and pkg.name == "r1" and (pkg / "report.html").exists()  # resumed at 'tvm'
    assert [p.name for p in board_dir.iterdir()] == ["r1"]


def test_a_stopped_deploy_whose_bits_file_was_edited_is_not_resumed_over_the_new_content(tmp_path, tiny_mnist_dir,
                                                                                          doubles):
    from bitswarm.errors import ConfigError
    from bitswarm.models import get_model

    cfg = _cfg(tmp_path, tiny_mnist_dir)
    D.deploy(cfg, stop_after="bits")
    again = _cfg(tmp_path, tiny_mnist_dir)  # the same command (which writes the original file)...
    get_model("tfc").uniform_bits(3, 2).save(cfg.bits_file)  # ...then the file is edited in place
    with pytest.raises(ConfigError, match="an unfinished deploy with this run id has other settings"):
        D.deploy(again)


def test_a_second_deploy_of_a_running_run_is_refused_at_once_naming_the_holder(tmp_path, tiny_mnist_dir, doubles):
    import os

    from bitswarm.errors import ConfigError
    from bitswarm.locks import hold_lock

    partial = D.deploy(_cfg(tmp_path, tiny_mnist_dir), stop_after="bits")
    held = hold_lock(partial / "flow" / ".lock", "run-id", "held by the test", "-")  # as a running deploy holds it
    try:
        with pytest.raises(ConfigError, match=f"another deploy of this run is running.*process {os.getpid()}"):
            D.deploy(_cfg(tmp_path, tiny_mnist_dir))
    finally:
        held.close()
    pkg = D.deploy(_cfg(tmp_path, tiny_mnist_dir))  # once released, the same command resumes and finishes
    assert pkg.name == "r1" and not (pkg / "flow" / ".lock").exists()


def test_bad_config_fails_before_work(tmp_path, tiny_mnist_dir, doubles):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: {fc0: {w: 99, a: 2}}\n")
    with pytest.raises(StepError, match=r"step 'bits' failed: .*bad.yaml: field 'layers.fc0.w'"):
        D.deploy(_cfg(tmp_path, tiny_mnist_dir, bits_file=str(bad)))
    assert list((tmp_path / "deploy" / "pynq-z2").iterdir()) == []


def test_deploy_a_qonnx_file_without_search(tmp_path, tiny_mnist_dir, doubles):
    from bitswarm.models import get_model
    from bitswarm.models.export import export_qonnx

    e = get_model("tfc")
    onnx = export_qonnx(e.build(e.uniform_bits(2, 2)), e.input_shape, tmp_path / "user.onnx").path
    pkg = D.deploy(_cfg(tmp_path, tiny_mnist_dir, bits_file=None, qonnx=str(onnx)))
    assert (pkg / "model.qonnx.onnx").read_bytes() == onnx.read_bytes()
    summary = json.loads((pkg / "summary.json").read_text())
    assert summary["bits"] is None and summary["finn"]["total"]["lut"] > 0 and (pkg / "report.html").exists()


def test_deploy_with_small_search(tmp_path, tiny_mnist_dir, doubles, monkeypatch):
    import bitswarm.workflow as W

    loads, real = [], W.load_dataset
    monkeypatch.setattr(W, "load_dataset", lambda *a: loads.append(a) or real(*a))
    cfg = _cfg(tmp_path, tiny_mnist_dir, bits_file=None, search={"particles": 3, "iters": 1, "eval_train": 500})
    pkg = D.deploy(cfg)
    assert len(loads) == 1  # the search step shares the run's dataset too
    summary = json.loads((pkg / "summary.json").read_text())
    assert summary["search"]["history"] and len(summary["search"]["evaluations"]) >= 3
    assert (pkg / "search" / "journal.sqlite").exists() and (pkg / "bits.yaml").exists()
    assert "Accuracy vs cost" in (pkg / "report.html").read_text()


@pytest.mark.finn
@pytest.mark.tvm
def test_deploy_end_to_end_with_real_finn_and_tvm(tmp_path, tiny_mnist_dir, monkeypatch, runner_cache):
    """No doubles: finn-plus estimates + codegen, TVM ARM cross-compile + host build timed by the runner,
    the armv7 native runner packaged and checked under qemu (its build cached with tests/test_tvm_native.py)."""
    monkeypatch.setitem(sys.modules, "bitswarm.flows.finn", __import__("bitswarm.flows.finn").flows.finn)
    search = {"particles": 3, "iters": 1, "eval_train": 500, "cost": "finn"}  # the default deploy's FINN cost
    env = Environment(data_dir=Path(tiny_mnist_dir), cache_dir=runner_cache, vivado=None, vitis_hls=None,
                      ray_address=None)
    pkg = D.deploy(_cfg(tmp_path, tiny_mnist_dir, bits_file=None, search=search, env=env))
    s = json.loads((pkg / "summary.json").read_text())
    assert s["search"]["cost"] == "finn" and "lut <= 37240" in s["search"]["constraint"]
    assert all("lut" in e["cost"] and "avg_bits" in e["cost"] for e in s["search"]["evaluations"])
    assert s["finn"]["total"]["lut"] > 0 and s["finn"]["missing_tool"]
    assert list((pkg / "finn" / "codegen").iterdir())
    arm, host = s["tvm"]
    assert (pkg / arm["lib"]).read_bytes()[:4] == b"\x7fELF" and arm["latency_ms"] is None
    native = arm["native_runner"]
    assert native["target"] == "armv7" and (pkg / native["runner"]).read_bytes()[18] == 40  # e_machine ARM
    assert native["checked"] == "under qemu-arm" and native["max_abs_diff_vs_host"] < 1e-4
    assert (pkg / "runner" / "armv7" / "README.md").exists() and list((pkg / "runner" / "armv7").glob("LICENSE*"))
    assert host["latency_ms"] > 0 and host["verified_max_abs_diff"] < 1e-3


@pytest.mark.finn
@pytest.mark.slow
def test_kill_9_during_the_finn_step_then_the_same_command_finishes_without_redoing_earlier_steps(tmp_path,
                                                                                                 tiny_mnist_dir):
    import json as _json
    import os
    import signal
    import subprocess
    import time

    bits = tmp_path / "bits.yaml"
    from bitswarm.models import get_model

    get_model("tfc").uniform_bits(2, 2, keep_first_last=True).save(bits)
    cmd = [sys.executable, "-m", "bitswarm", "deploy", "--board", "pynq-z2", "--model", "tfc", "--config", str(bits),
           "--data-dir", str(tiny_mnist_dir), "--fp-epochs", "1", "--epochs", "1", "--no-tvm", "--threads", "1",
           "--verify-samples", "20", "--out", str(tmp_path / "out")]
    env = {**os.environ, "BITSWARM_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.Popen([*cmd, "--run-id", "first"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    log = tmp_path / "out" / "pynq-z2" / ".partial-first" / "flow" / "flow_log.json"
    deadline = time.time() + 600
    while time.time() < deadline and not (log.exists() and "export" in log.read_text()):
        time.sleep(0.5)
    assert log.exists(), "the deploy never reached its FINN step"
    os.killpg(first.pid, signal.SIGKILL)  # the deploy and its FINN worker
    first.wait()
    done_before = [e["step"] for e in _json.loads(log.read_text())]
    assert done_before == ["bits", "train", "export"]
    r = subprocess.run([*cmd, "--run-id", "second"], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    pkg = tmp_path / "out" / "pynq-z2" / "first"  # the unfinished package was resumed and finished
    steps = [e["step"] for e in _json.loads((pkg / "flow" / "flow_log.json").read_text())]
    assert steps[:3] == ["bits", "train", "export"] and steps[3] == "finn" and steps.count("train") == 1
    assert _json.loads((pkg / "summary.json").read_text())["finn"]["verification"]["levels"]


def test_uniform_step_sets_the_searched_design_beside_finn_designs_with_cost_and_shipped_accuracy(
        tmp_path, tiny_mnist_dir, monkeypatch):
    import bitswarm.hw.cost as C
    import bitswarm.workflow as W
    from bitswarm.errors import ConfigError
    from bitswarm.models import get_model

    cfg = _cfg(tmp_path, tiny_mnist_dir)
    real = C.get_cost_model

    def fake(name, **kw):
        if name != "surrogate":
            return real(name, **kw)
        assert kw["target_fps"] == 10000  # the deploy's folding target

        def cost(entry, bits, board):
            if bits["fc1"].a == 2 and bits["fc1"].w == 2:
                raise ConfigError("surrogate", "fc1.a", "not calibrated", "1..8")
            return Cost("surrogate", {"lut": 1000.0 * bits["fc1"].a, "bram18": 10.0, "dsp": 0.0,
                                      "throughput_fps": 1e4})
        cost.name = "surrogate"
        return cost

    monkeypatch.setattr(C, "get_cost_model", fake)
    monkeypatch.setattr(W, "reference_designs", lambda *a: {"w1a1": {"test_acc": [0.8, 0.82]}})
    bits = get_model("tfc").uniform_bits(2, 2).to_dict()["layers"]
    state = {"bits": bits, "accuracy": {"test": 0.9}, "search": {"cost": "surrogate"},
             "finn": {"total": {"lut": 1500.0, "bram18": 12.0, "dsp": 0.0, "throughput_fps": 1e4}}}
    rows = D.step_uniform(state, cfg)["uniform"]
    by = {r["design"].replace(" (FINN-style)", "").split(" ")[0]: r for r in rows if "edges" not in r["design"]}
    assert by["w1a1"]["lut"] == 1000 and by["w1a1"]["test acc"] == pytest.approx(0.81) and by["w1a1"]["seeds"] == 2
    assert by["w1a2"]["lut"] == 2000 and "test acc" not in by["w1a2"]
    assert "not costed" in by["w2a2"]["FINN cost"]  # reported, not a failed deploy
    assert by["searched"]["lut"] == 1500 and by["searched"]["test acc"] == 0.9 and by["searched"]["fits FINN limits"]
    assert all("lut" not in r for r in rows if "edges" in r["design"])  # the bit-only rows
    state["search"] = None  # given bits: no FINN cost for the designs
    assert all("lut" not in r for r in D.step_uniform(state, cfg)["uniform"][:-1])
