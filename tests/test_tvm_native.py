"""Native TVM runners (hw/native): built for x86-64, armv7 and aarch64, run (ARM under qemu-user) on a real
quantized model and compared with TVM's Python runtime and PyTorch on fresh inputs."""

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm")

import torch  # noqa: E402

from bitswarm.boards import load_board  # noqa: E402
from bitswarm.errors import ConfigError, ToolMissingError  # noqa: E402
from bitswarm.hw import tvm_native  # noqa: E402
from bitswarm.hw.tvm_build import compile_tvm, run_library  # noqa: E402
from bitswarm.hw.tvm_native import (  # noqa: E402
    RUNNER_TARGETS,
    RunnerError,
    build_runner,
    emulator_for,
    run_runner,
    runner_key,
    runner_readme,
    runner_target_for,
    runtime_licenses,
)
from bitswarm.models import get_model  # noqa: E402
from bitswarm.models.export import export_qonnx  # noqa: E402

pytestmark = pytest.mark.tvm
BOARDS = {"x86_64": "host", "armv7": "pynq-z2", "aarch64": "zcu104"}
ELF_MACHINE = {"x86_64": (2, 62), "armv7": (1, 40), "aarch64": (2, 183)}  # (EI_CLASS, e_machine)
TVM_ATOL = 1e-4  # the runner against TVM's Python runtime on the x86 library
TORCH_ATOL = 1e-3  # compile_tvm's default tolerance against PyTorch
N_INPUTS = 3


def _require_tools(target: str) -> None:
    t = RUNNER_TARGETS[target]
    if shutil.which(t.compiler) is None:
        pytest.skip(f"the {target} runner needs {t.compiler} (apt-get install {t.package})")
    emulator = emulator_for(target)
    if emulator and shutil.which(emulator.split()[0]) is None:
        pytest.skip(f"running the {target} runner here needs {emulator.split()[0]} (apt-get install qemu-user)")


@pytest.fixture(scope="module")
def tfc(tmp_path_factory):
    entry = get_model("tfc")
    model = entry.build(entry.uniform_bits(4, 4, keep_first_last=True)).eval()
    path = tmp_path_factory.mktemp("native") / "tfc.qonnx.onnx"
    export_qonnx(model, entry.input_shape, path)
    return path, model


@pytest.fixture(scope="module")
def libraries(tfc, tmp_path_factory):
    """``get(target)``: the TFC compiled by compile_tvm for that target's board (x86 verified against PyTorch)."""
    out, built = tmp_path_factory.mktemp("libs"), {}

    def get(target: str) -> Path:
        if target not in built:
            extra = {"torch_model": tfc[1]} if target == "x86_64" else {}
            built[target] = compile_tvm(tfc[0], load_board(BOARDS[target]), out / target, **extra).lib_path
        return built[target]

    return get


@pytest.fixture(scope="module")
def runners(runner_cache):
    """``get(target)``: the runner, compiled once per session into a temporary cache (shared with the
    end-to-end deploy test, which packages the armv7 one)."""
    cache, built = runner_cache, {}

    def get(target: str) -> Path:
        _require_tools(target)
        if target not in built:
            built[target] = build_runner(target, cache)
        return built[target]

    get.cache = cache
    return get


def _torch(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("target", ["armv7", "aarch64"])  # the host runner is built the same way (not in CI: time)
def test_runner_computes_what_tvm_and_pytorch_compute(target, tfc, libraries, runners):
    runner = runners(target)
    head = runner.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and (head[4], int.from_bytes(head[18:20], "little")) == ELF_MACHINE[target]
    lib, x86_lib, model = libraries(target), libraries("x86_64"), tfc[1]
    xs = np.random.default_rng(2024).uniform(-1, 1, (N_INPUTS, 1, 1, 28, 28)).astype(np.float32)
    refs = [_torch(model, x) for x in xs]
    spread = max(float(np.abs(r - refs[0]).max()) for r in refs[1:])
    if spread < 10 * TORCH_ATOL:
        pytest.fail(f"the model's outputs hardly depend on its input (spread {spread:.2g}): comparing proves nothing")
    for x, ref in zip(xs, refs, strict=True):
        y, info = run_runner(runner, lib, x, emulator=emulator_for(target), repeat=2, threads=1)
        assert info["output_shape"] == list(ref.shape) and info["input_shape"] == [1, 1, 28, 28]
        assert info["repeat"] == 2 and info["threads"] == 1 and info["num_outputs"] == 1
        assert {"latency_ms_median", "latency_ms_min", "load_ms"} <= set(info)
        assert y.dtype == np.float32 and y.shape == ref.shape
        np.testing.assert_allclose(y, run_library(x86_lib, x), rtol=0, atol=TVM_ATOL)
        np.testing.assert_allclose(y, ref, rtol=0, atol=TORCH_ATOL)


def test_runner_is_cached_and_built_atomically(runners):
    runner = runners("armv7")
    mtime = runner.stat().st_mtime_ns
    assert build_runner("armv7", runners.cache) == runner and runner.stat().st_mtime_ns == mtime
    assert runner.parent.parent == runners.cache / "tvm-runner" and runner.parent.name.startswith("armv7-")
    assert (runner.parent / "build.json").is_file() and not list(runner.parent.glob(".*tmp"))


def test_runner_reads_the_input_shape_next_to_the_library(runners, libraries, tmp_path):
    runner, lib = runners("armv7"), libraries("armv7")
    assert json.loads(lib.with_suffix(".json").read_text())["input_shape"] == [1, 1, 28, 28]
    x = np.random.default_rng(7).uniform(-1, 1, (1, 1, 28, 28)).astype(np.float32)
    x.tofile(tmp_path / "in.bin")
    run = subprocess.run([*emulator_for("armv7").split(), str(runner), str(lib), str(tmp_path / "in.bin"),
                          str(tmp_path / "out.bin")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["output_shape"] == [1, 10]
    np.testing.assert_allclose(np.fromfile(tmp_path / "out.bin", "<f4").reshape(1, 10),
                               run_library(libraries("x86_64"), x), rtol=0, atol=TVM_ATOL)


def test_runner_failures_raise_with_the_runners_message(runners, libraries, tmp_path):
    runner, lib, emu = runners("armv7"), libraries("armv7"), emulator_for("armv7")
    with pytest.raises(RunnerError, match=r"exited 2: runner: .*"):
        run_runner(runner, lib, np.zeros((1, 4), np.float32), emulator=emu)  # the model takes 1x1x28x28
    with pytest.raises(RunnerError, match="no library at"):
        run_runner(runner, tmp_path / "none.so", np.zeros((1, 1, 28, 28), np.float32), emulator=emu)


def test_key_follows_sources_and_compiler(tmp_path, monkeypatch):
    assert runner_key("armv7", "gcc 12") != runner_key("armv7", "gcc 13") != runner_key("aarch64", "gcc 13")
    copy = tmp_path / "native"
    shutil.copytree(tvm_native.NATIVE_DIR, copy)
    monkeypatch.setattr(tvm_native, "NATIVE_DIR", copy)
    before = runner_key("x86_64", "gcc")
    (copy / "runner.cc").write_text((copy / "runner.cc").read_text() + "\n// changed\n")
    assert runner_key("x86_64", "gcc") != before


def test_missing_compiler_names_the_debian_package(tmp_path, monkeypatch):
    t = dataclasses.replace(RUNNER_TARGETS["armv7"], compiler="no-such-arm-g++")
    monkeypatch.setitem(RUNNER_TARGETS, "armv7", t)
    with pytest.raises(ToolMissingError, match="apt-get install g\\+\\+-arm-linux-gnueabihf"):
        build_runner("armv7", tmp_path)
    assert not (tmp_path / "tvm-runner").exists()


def test_boards_map_to_runner_targets():
    assert {b: runner_target_for(load_board(b)) for b in ("host", "pynq-z2", "zcu104", "kv260")} == {
        "host": "x86_64", "pynq-z2": "armv7", "zcu104": "aarch64", "kv260": "aarch64"}
    assert emulator_for("x86_64") is None and emulator_for("armv7").startswith("qemu-arm -L ")
    pynq = load_board("pynq-z2")
    soft = dataclasses.replace(pynq, cpu=dataclasses.replace(
        pynq.cpu, tvm_target={**pynq.cpu.tvm_target, "mtriple": "armv7a-linux-gnueabi"}))
    with pytest.raises(ConfigError, match="hard-float"):
        runner_target_for(soft)
    with pytest.raises(ConfigError, match="unknown runner target"):
        build_runner("riscv64", Path("/nonexistent"))


def test_readme_says_how_to_copy_and_run():
    text = runner_readme("armv7", "pynq-z2")
    assert "pynq-z2" in text and "scp runner model.so" in text and "./runner model.so input.bin output.bin" in text
    assert "float32" in text and "-mfpu=neon" in text
    assert "glibc >= 2.34" in runner_readme("armv7", "pynq-z2", min_glibc="2.34")
    licenses = runtime_licenses()
    assert {"LICENSE.tvm", "NOTICE.tvm", "LICENSE.tvm-ffi"} <= set(licenses)
    assert all("Apache" in p.read_text() for p in licenses.values())
