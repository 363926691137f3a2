"""Native TVM runners: a C++ program with the TVM runtime that runs an exported model without Python.

A board's CPU runs the library ``hw/tvm_build.compile_tvm`` exports (``model.so``) with ``runner``,
built here from ``hw/native/`` (``runner.cc`` and ``tvm_runtime_unity.cc``, which compiles the
runtime sources shipped in the installed apache-tvm and apache-tvm-ffi wheels as one translation
unit). One runner per CPU target (:data:`RUNNER_TARGETS`), cached by the content of everything that
goes into it::

    runner = build_runner(runner_target_for(board), cache_dir)
    y, info = run_runner(runner, "model.so", x, emulator=emulator_for(target))  # qemu-user off the board

The runner is linked with ``-rdynamic`` (the model library resolves TVM's C symbols from it) and a
static libstdc++/libgcc; it needs only the board's glibc, at least the version :func:`glibc_floor`
reports (with Debian 12's compilers 2.34 for armv7, 2.35 for aarch64 and x86-64).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitswarm.boards import Board
from bitswarm.cachekey import digest, tool_versions
from bitswarm.errors import BitswarmError, ConfigError, ToolMissingError

NATIVE_DIR = Path(__file__).resolve().parent / "native"
DEFINES = ("-DNDEBUG", "-DTVM_FFI_USE_LIBBACKTRACE=0", "-DTVM_FFI_BACKTRACE_ON_SEGFAULT=0",
           "-DTVM_LOG_CUSTOMIZE=0", "-DTVM_LOG_DEBUG=0")
COMMON_FLAGS = ("-std=c++17", "-O2", "-ffunction-sections", "-fdata-sections", *DEFINES)
LINK_FLAGS = ("-rdynamic", "-Wl,--gc-sections", "-static-libstdc++", "-static-libgcc", "-s", "-ldl", "-lpthread")
STDERR_TAIL = 12  # lines of a failing compiler's or runner's stderr put into the error


class RunnerError(BitswarmError):
    """The native runner (or its compilation) failed."""


@dataclass(frozen=True)
class RunnerTarget:
    name: str
    compiler: str  # a g++ on PATH
    package: str  # the Debian package that has it
    flags: tuple[str, ...] = ()
    emulator: str = ""  # qemu-user command line running its binaries on an x86-64 host


RUNNER_TARGETS: dict[str, RunnerTarget] = {
    "x86_64": RunnerTarget("x86_64", "g++", "g++"),
    "armv7": RunnerTarget("armv7", "arm-linux-gnueabihf-g++", "g++-arm-linux-gnueabihf",
                          ("-mcpu=cortex-a9", "-mfpu=neon", "-mfloat-abi=hard", "-Wno-psabi"),
                          "qemu-arm -L /usr/arm-linux-gnueabihf"),
    "aarch64": RunnerTarget("aarch64", "aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu", (),
                            "qemu-aarch64 -L /usr/aarch64-linux-gnu"),
}
_TRIPLE_PREFIXES = (("x86_64", "x86_64"), ("aarch64", "aarch64"), ("arm64", "aarch64"), ("armv7", "armv7"))


def _target(name: str) -> RunnerTarget:
    if name not in RUNNER_TARGETS:
        raise ConfigError("runner", "target", f"unknown runner target {name!r}", ", ".join(RUNNER_TARGETS))
    return RUNNER_TARGETS[name]


def runner_target_for(board: Board) -> str:
    """The :data:`RUNNER_TARGETS` name for ``board``'s CPU (its ``cpu.tvm_target`` triple, else this machine)."""
    spec = board.cpu.tvm_target
    if spec.get("kind") != "llvm":
        raise ConfigError(board.source, "cpu.tvm_target.kind", f"{spec.get('kind')!r} has no native CPU runner",
                          "llvm")
    triple = str(spec.get("mtriple", "")) or platform.machine()
    for prefix, name in _TRIPLE_PREFIXES:
        if triple.startswith(prefix):
            if name == "armv7" and not triple.endswith("hf"):
                raise ConfigError(board.source, "cpu.tvm_target.mtriple", f"{triple!r} is not hard-float",
                                  "armv7a-linux-gnueabihf (the armv7 runner is built with -mfloat-abi=hard)")
            return name
    raise ConfigError(board.source, "cpu.tvm_target.mtriple", f"no native runner for {triple!r}",
                      "x86_64-*, armv7*-linux-gnueabihf, aarch64-linux-gnu")


def emulator_for(target: str) -> str | None:
    """The qemu-user prefix that runs ``target``'s binaries here; None when this machine runs them itself."""
    t = _target(target)
    return None if t.name == platform.machine() else (t.emulator or None)


def _compiler(t: RunnerTarget) -> tuple[str, str]:
    """The compiler's path and first ``--version`` line."""
    path = shutil.which(t.compiler)
    if path is None:
        raise ToolMissingError(f"compiler '{t.compiler}' for the {t.name} TVM runner not found on PATH "
                               f"(Debian: apt-get install {t.package})")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    return path, out.splitlines()[0].strip()


def _sources() -> dict[str, str]:
    """sha256 of every file in ``hw/native`` (the unity file, the runner, the support headers)."""
    files = sorted(p for p in NATIVE_DIR.rglob("*") if p.is_file() and p.suffix in (".cc", ".h"))
    return {str(p.relative_to(NATIVE_DIR)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # without importing TVM
    if spec is None or not spec.submodule_search_locations:
        raise ToolMissingError(f"Python package {name} is not installed (pip install apache-tvm apache-tvm-ffi)")
    return Path(list(spec.submodule_search_locations)[0])


def _include_flags() -> list[str]:
    """Include paths: our headers, the wheels' headers and sources (see tvm_runtime_unity.cc)."""
    tvm_dir, ffi_dir = _package_dir("tvm"), _package_dir("tvm_ffi")
    support = NATIVE_DIR / "include" / "tvm" / "support"
    if not (tvm_dir / "src" / "runtime" / "vm" / "vm.cc").is_file():
        raise ToolMissingError(f"the TVM runtime sources are not in {tvm_dir} (an apache-tvm wheel has src/runtime)")
    return [f"-I{NATIVE_DIR / 'include'}", f"-I{tvm_dir / 'include'}", f"-I{ffi_dir / 'include'}",
            f"-I{tvm_dir}", f"-I{ffi_dir}", "-iquote", str(support), "-iquote", str(support / "cuda")]


def runner_key(target: str, compiler_version: str) -> str:
    """Cache key: the runner sources, the TVM wheels (their runtime sources), the compiler and the flags."""
    t = _target(target)
    return digest(_sources(), tool_versions("apache-tvm", "apache-tvm-ffi"), compiler_version,
                  [*COMMON_FLAGS, *t.flags, *LINK_FLAGS])


def build_runner(target: str, cache_dir: Path, *, niceness: int = 10, timeout: float = 3600) -> Path:
    """The runner for ``target``, compiled into ``cache_dir/tvm-runner/<target>-<key>/runner`` unless it is there.

    One compiler process (several minutes; run under ``nice -n niceness``). Writes ``build.json``
    (command, compiler, seconds) next to it; the binary appears atomically (built under a temporary name).
    """
    t = _target(target)
    compiler, version = _compiler(t)
    out = Path(cache_dir) / "tvm-runner" / f"{t.name}-{runner_key(t.name, version)}" / "runner"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".runner.{os.getpid()}.tmp")
    cmd = [compiler, *COMMON_FLAGS, *t.flags, *_include_flags(), str(NATIVE_DIR / "tvm_runtime_unity.cc"),
           str(NATIVE_DIR / "runner.cc"), "-o", str(tmp), *LINK_FLAGS]
    nice = ["nice", "-n", str(niceness)] if niceness and shutil.which("nice") else []
    t0 = time.time()
    try:
        run = subprocess.run(nice + cmd, capture_output=True, text=True, timeout=timeout)
        if run.returncode != 0:
            raise RunnerError(f"compiling the {t.name} TVM runner failed ({t.compiler} exit {run.returncode}): "
                              + _tail(run.stderr))
        info = {"target": t.name, "compiler": version, "command": cmd, "seconds": round(time.time() - t0, 1),
                "bytes": tmp.stat().st_size, "min_glibc": glibc_floor(tmp)}
        (out.parent / "build.json").write_text(json.dumps(info, indent=2))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def glibc_floor(binary: Path) -> str | None:
    """The newest glibc symbol version ``binary`` needs (the oldest glibc it runs with), e.g. ``"2.34"``."""
    found = {tuple(map(int, m)) for m in re.findall(rb"GLIBC_(\d+)\.(\d+)", Path(binary).read_bytes())}
    return ".".join(map(str, max(found))) if found else None


def _tail(text: str, n: int = STDERR_TAIL) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) if lines else "(no stderr)"


def _emulator_argv(emulator: str | None) -> list[str]:
    argv = shlex.split(emulator or "")
    if argv and shutil.which(argv[0]) is None:
        raise ToolMissingError(f"emulator '{argv[0]}' not found on PATH (Debian: apt-get install qemu-user)")
    return argv


def run_runner(runner: Path, lib: Path, x: np.ndarray, *, emulator: str | None = None, repeat: int = 1,
               threads: int = 0, timeout: float = 600) -> tuple[np.ndarray, dict]:
    """Run ``lib``'s ``main`` on ``x`` (float32, with the batch dimension) with the native ``runner``.

    Returns the first output and the runner's JSON line (``output_shape``, ``latency_ms_median``, ...).
    A non-zero exit raises :class:`RunnerError` with the end of the runner's stderr.
    """
    x = np.ascontiguousarray(x, dtype="<f4")
    with tempfile.TemporaryDirectory(prefix="bitswarm-runner-") as d:
        xin, yout = Path(d) / "input.bin", Path(d) / "output.bin"
        x.tofile(xin)
        cmd = [*_emulator_argv(emulator), str(runner), str(lib), str(xin), str(yout),
               "--shape", ",".join(map(str, x.shape)), "--repeat", str(repeat), "--threads", str(threads)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise RunnerError(f"TVM runner {Path(runner).name} on {Path(lib).name} did not finish in "
                              f"{timeout:g} s") from e
        if run.returncode != 0:
            raise RunnerError(f"TVM runner {Path(runner).name} on {Path(lib).name} exited {run.returncode}: "
                              + _tail(run.stderr))
        lines = run.stdout.strip().splitlines()
        if not lines:
            raise RunnerError(f"TVM runner {Path(runner).name} printed nothing: " + _tail(run.stderr))
        info = json.loads(lines[-1])
        y = np.fromfile(yout, dtype="<f4")
    shape = tuple(info["output_shape"])
    if y.size != int(np.prod(shape)):
        raise RunnerError(f"TVM runner wrote {y.size} floats for an output of shape {shape}")
    return y.reshape(shape).astype(np.float32), info


def runtime_licenses() -> dict[str, Path]:
    """The licence files to ship next to a runner (it contains TVM's and tvm-ffi's code, Apache-2.0)."""
    from importlib.metadata import distribution

    out: dict[str, Path] = {}
    for dist, tag in (("apache-tvm", "tvm"), ("apache-tvm-ffi", "tvm-ffi")):
        for f in distribution(dist).files or []:
            if f.name in ("LICENSE", "NOTICE") and f.parent.name in ("tvm", "licenses"):
                out.setdefault(f"{f.name}.{tag}", Path(str(f.locate())).resolve())
    return out


def runner_readme(target: str, board_name: str, *, min_glibc: str | None = None) -> str:
    """How to run ``runner`` and ``model.so`` on the board (copy, command line, file formats).

    ``min_glibc``: the runner's :func:`glibc_floor` (``build.json`` next to it), stated when given.
    """
    t = _target(target)
    flags = " ".join(f for f in t.flags if not f.startswith("-W")) or "(no CPU flags)"
    glibc = f"glibc >= {min_glibc}" if min_glibc else "glibc"
    return f"""\
Native TVM runner for {board_name} ({t.name}; {t.compiler} {flags})

  runner      the TVM runtime (Relax VM) and a command-line driver; needs only the board's {glibc}
              (libstdc++ is linked in), no Python and no TVM installation
  model.so    the model, compiled by TVM for this CPU
  model.json  its input shape (read when --shape is not given)
  LICENSE.*, NOTICE.*  the runner contains Apache TVM and tvm-ffi code (Apache-2.0): keep them with it

Copy them to the board and run:

  scp runner model.so model.json LICENSE.* NOTICE.* USER@BOARD:bitswarm/
  ssh USER@BOARD
  cd bitswarm && chmod +x runner
  ./runner model.so input.bin output.bin --repeat 50 --threads 0

Options: --shape 1,C,H,W (default: model.json's input_shape), --repeat N timed calls after the
first one (default 1), --threads N worker threads (0: one per core).

input.bin   raw float32, little-endian, C order, exactly the input shape with the batch dimension
            (numpy: x.astype("<f4").tofile("input.bin"))
output.bin  the first output, raw float32 the same way; its shape is output_shape in the JSON line
            (numpy: np.fromfile("output.bin", "<f4").reshape(output_shape))
stdout      one JSON line: output_shape, input_shape, repeat, threads, num_outputs, load_ms,
            first_call_ms, latency_ms_median, latency_ms_min, latency_ms_mean (milliseconds)
errors      one line "runner: ..." on stderr, exit status 2
"""
