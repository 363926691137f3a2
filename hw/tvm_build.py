"""TVM flow: QONNX -> ONNX QCDQ -> Relax -> a shared library for the board's CPU.

Steps (each saves its output in ``out_dir``)::

    qcdq     QONNX -> ONNX QCDQ (``model.qcdq.onnx``): qonnx' QuantToQCDQ for 2..8-bit quantizers;
             quantizers on constants (weights, 32-bit biases) folded; the remaining ones (1-bit,
             16-bit, other rounding modes) lowered to plain float ONNX ops
    import   ``tvm.relax.frontend.onnx.from_onnx``
    build    ``tvm.compile`` for ``board.cpu.tvm_target`` (a JSON dict), ``export_library``
             (cross-compiled with ``board.cpu.cross_compiler`` for non-host CPUs)
    verify   x86 only: the library run on fresh inputs against PyTorch (when the model is given)
             or against qonnx's executor on the QONNX file (itself verified against PyTorch at export)

TVM dequantizes QDQ to float32 (Relax has no pass turning QDQ into integer ops), so the binary
computes in float32 whatever the bit-widths are; ``lowering="int"`` (:mod:`bitswarm.hw.tvm_int`)
computes quantized Conv/Gemm/MatMul on integer codes with int32 accumulation instead.

On CPU ``tvm.compile``'s default Relax pipeline only legalizes: no constant folding, no fusion and
no schedule (naive scalar loop nests, weights transposed on every call). :func:`cpu_pipeline` is
Relax's CPU pipeline (fold, fuse) plus :func:`cpu_schedule`, a default schedule of the fused loop
nests (register tiles, vectorized, epilogue fused; :mod:`bitswarm.hw.tvm_schedule`); host builds target
this CPU (``mcpu``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bitswarm.boards import Board
from bitswarm.errors import BitswarmError, ConfigError, ToolMissingError
from bitswarm.hw.tvm_lower import to_qcdq
from bitswarm.hw.tvm_schedule import cpu_pipeline
from bitswarm.hw.tvm_tune import TuneChoice, TvmTuneUnavailableError, keep_faster, tune_module

TARGET_KINDS = ("llvm", "cuda")


class TvmVerifyError(BitswarmError):
    """The compiled library does not compute what the reference computes."""


@dataclass(frozen=True)
class TvmBuildResult:
    lib_path: Path
    target: dict[str, Any]
    input_shape: tuple[int, ...]  # with the batch dimension
    verified_max_abs_diff: float | None  # None when cross-compiled (not run here)
    seconds: float
    onnx_path: Path | None = None
    verified_against: str | None = None  # "pytorch" or "qonnx-executor"
    tuned: bool = False
    latency_ms: float | None = None  # median on this CPU (host builds only; in-process, not over RPC)
    tuning_reused: bool = False  # the tuning database kept in the cache was applied (no new trials)
    tuning: TuneChoice | None = None  # with tune: both libraries' times and which one was kept

    @property
    def tuning_kept(self) -> str | None:
        """With tune: "tuned" or "default", whichever library was faster here."""
        return None if self.tuning is None else self.tuning.kept


def is_host_target(target: dict[str, Any]) -> bool:
    """An ``llvm`` target without a foreign triple runs on this machine."""
    import platform

    triple = str(target.get("mtriple", ""))
    return target.get("kind") == "llvm" and (not triple or triple.startswith(platform.machine()))


def make_target(board: Board):
    """``tvm.target.Target`` from ``board.cpu.tvm_target``; one clear error for a bad dict."""
    import tvm

    spec = dict(board.cpu.tvm_target)
    field = "cpu.tvm_target"
    if spec.get("kind") not in TARGET_KINDS:
        raise ConfigError(board.source, f"{field}.kind", f"unknown TVM target kind {spec.get('kind')!r}",
                          ", ".join(TARGET_KINDS))
    if spec["kind"] == "cuda" and not tvm.cuda().exist:
        raise ToolMissingError(f"board {board.name}: TVM target 'cuda' needs a GPU; none is visible here")
    if is_host_target(spec) and "mcpu" not in spec:  # without it LLVM emits SSE2 only (no AVX/FMA)
        from tvm.target.codegen import llvm_get_system_cpu

        spec["mcpu"] = llvm_get_system_cpu()
    try:
        return tvm.target.Target(spec)
    except Exception as e:  # TVM raises its own error types with multi-line messages
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ConfigError(board.source, field, f"TVM rejects {json.dumps(spec)}: {first}") from e


def cross_compiler(board: Board, target: dict[str, Any]):
    """``fcompile`` for ``export_library``: None on the host, the board's cross compiler otherwise."""
    if is_host_target(target) or target.get("kind") == "cuda":
        return None
    cc = board.cpu.cross_compiler
    if not cc:
        raise ConfigError(board.source, "cpu.cross_compiler", "missing for a non-host TVM target",
                          "e.g. arm-linux-gnueabihf-g++")
    if shutil.which(cc) is None:
        raise ToolMissingError(f"cross compiler '{cc}' for board {board.name} not found on PATH "
                               f"(Debian: apt-get install g++-arm-linux-gnueabihf)")
    from tvm.support import cc as tvm_cc

    return tvm_cc.cross_compiler(cc)


def import_onnx(onnx_path: Path):
    import onnx
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(onnx.load(str(onnx_path)), keep_params_in_input=False)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    return mod


def _export(ex, path: Path, fcompile) -> Path:
    ex.export_library(str(path), fcompile=fcompile) if fcompile else ex.export_library(str(path))
    return path


def _graph_input(onnx_path: Path) -> tuple[str, tuple[int, ...]]:
    import onnx

    g = onnx.load(str(onnx_path)).graph
    inits = {i.name for i in g.initializer}
    inp = next(i for i in g.input if i.name not in inits)
    dims = tuple(d.dim_value or 1 for d in inp.type.tensor_type.shape.dim)
    return inp.name, dims


def run_library(lib_path: Path, x: np.ndarray) -> np.ndarray:
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib_path)), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x))
    out = out[0] if isinstance(out, (list, tuple)) or hasattr(out, "__len__") and not hasattr(out, "numpy") else out
    return out.numpy()


def output_spread(outputs) -> float:
    """The largest max - min, over the inputs, of any output element (0: the same output every time)."""
    return float(np.max(np.ptp(np.stack(outputs), axis=0)))


class DegenerateReferenceError(BitswarmError):
    """The reference computes the same output for every verification input: the check proves nothing."""


def verify_library(lib_path: Path, shape: tuple[int, ...], reference, n: int = 4, seed: int = 1,
                   min_spread: float = 1e-6) -> float:
    """Max |TVM - reference| over ``n`` random inputs in [-1, 1]; ``reference(x: ndarray) -> ndarray``.

    A reference whose outputs vary by at most ``min_spread`` (max - min over the inputs, relative to
    the output's magnitude) is refused with :class:`DegenerateReferenceError`: a dead model (e.g.
    random weights whose quantized activations are all zero) would pass any library.
    """
    rng = np.random.default_rng(seed)
    worst, refs = 0.0, []
    for _ in range(n):
        x = (rng.random(shape, dtype=np.float32) * 2 - 1).astype(np.float32)
        refs.append(np.asarray(reference(x), dtype=np.float64))
        worst = max(worst, float(np.max(np.abs(run_library(lib_path, x) - refs[-1]))))
    spread = output_spread(refs)
    if spread <= min_spread * max(1.0, float(np.max(np.abs(refs)))):
        raise DegenerateReferenceError(
            f"verification of {Path(lib_path).name}: the reference output is the same for all {n} random inputs "
            f"(max - min = {spread:.3g}), so agreeing with it proves nothing; use trained weights or other inputs")
    return worst


def _torch_reference(model):
    import torch

    model = model.eval()

    def ref(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return ref


def _qonnx_reference(qonnx_path: Path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    m = ModelWrapper(str(qonnx_path))
    iname, oname = m.graph.input[0].name, m.graph.output[0].name
    return lambda x: execute_onnx(m, {iname: x})[oname]


def _compile(mod, shape: tuple[int, ...], board: Board, target, fcompile, out_dir: Path, name: str,
             tune: tuple[int, Path | None] | None):
    """``out_dir/<name>.so`` with bitswarm's CPU pipeline; with ``tune`` (trials, cache dir) also a
    MetaSchedule-tuned build, the faster of the two kept. -> (library, tuning database reused, choice)."""
    import tvm

    target_dict = dict(board.cpu.tvm_target)
    tuned, reused, choice = None, False, None
    if tune is not None:
        if not is_host_target(target_dict):
            raise TvmTuneUnavailableError(f"--tune: board {board.name}'s target is not this CPU; tuning measures "
                                          "candidates locally (an RPC runner on the board is not wired)")
        tuned_mod, tuned_target, reused = tune_module(mod, target_dict, board.cpu.cores, out_dir / f"{name}.tuning",
                                                      *tune)
        tuned = _export(tvm.compile(tuned_mod, tuned_target, relax_pipeline="default"), out_dir / f".{name}.tuned.so",
                        fcompile)
    pipeline = cpu_pipeline(target) if target.kind.name == "llvm" else "default"
    lib = _export(tvm.compile(mod, target, relax_pipeline=pipeline), out_dir / f".{name}.tmp.so", fcompile)
    if tuned is not None:  # MetaSchedule on a small trial budget can lose to the default schedule
        choice = keep_faster(tuned, lib, shape)
        if choice.kept == "tuned":
            tuned.replace(lib)
        else:
            tuned.unlink()
    return lib.replace(out_dir / f"{name}.so"), reused, choice


def compile_tvm(qonnx_or_onnx_path: str | Path, board: Board, out_dir: str | Path, *, tune: bool = False,
                input_shape: tuple[int, ...] | None = None, torch_model=None, atol: float = 1e-3,
                verify: bool = True, name: str = "model", lowering: str = "qcdq",
                tune_trials: int = 64, tune_cache: Path | None = None) -> TvmBuildResult:
    """Compile a QONNX (or plain/QCDQ ONNX) model for ``board``'s CPU into ``out_dir/<name>.so``.

    ``input_shape`` (C, H, W, without batch) is checked against the model's graph input.
    On the host the library is verified (``torch_model`` if given, else qonnx' executor) and a
    difference above ``atol`` raises :class:`TvmVerifyError` (``verify=False`` skips it, e.g. for
    latency-only builds). ``tune`` runs MetaSchedule for ``tune_trials`` trials on this CPU
    (host targets only; :func:`tune_module`), its database kept under ``tune_cache`` (the cache dir) when
    given, so the next build of the same model reuses it instead of tuning again.
    ``lowering``: ``qcdq`` (QuantizeLinear/Clip/DequantizeLinear), ``float`` (the same quantizers as
    plain float ops) or ``int`` (QCDQ with integer Conv/Gemm/MatMul; see :func:`bitswarm.hw.tvm_lower.to_qcdq`).
    A reference that is constant over the verification inputs is refused (:func:`verify_library`).
    Writes ``<name>.json`` (target, input) next to the library.
    """
    t0 = time.time()
    src, out_dir = Path(qonnx_or_onnx_path), Path(out_dir)
    target_dict = dict(board.cpu.tvm_target)
    target = make_target(board)
    fcompile = cross_compiler(board, target_dict)  # fail early, before any work, when it is missing
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = to_qcdq(src, out_dir / f"{name}.{lowering}.onnx", lowering)
    iname, shape = _graph_input(onnx_path)
    if input_shape is not None and tuple(input_shape) != shape[1:]:
        raise ConfigError(str(src), "input shape", f"the model takes {shape[1:]}, not {tuple(input_shape)}")
    mod = import_onnx(onnx_path)
    lib, reused, choice = _compile(mod, shape, board, target, fcompile, out_dir, name,
                                   (tune_trials, tune_cache) if tune else None)
    diff, against = None, None
    if verify and is_host_target(target_dict):
        ref = _torch_reference(torch_model) if torch_model is not None else _qonnx_reference(src)
        against = "pytorch" if torch_model is not None else "qonnx-executor"
        try:
            diff = verify_library(lib, shape, ref)
        except DegenerateReferenceError:
            lib.unlink(missing_ok=True)
            raise
        if diff > atol:
            lib.unlink(missing_ok=True)
            raise TvmVerifyError(f"TVM build of {src.name} for {board.name} differs from {against} by {diff:.3g} "
                                 f"(tolerance {atol:g}); the library was removed")
    latency = None
    if verify and is_host_target(target_dict):
        from bitswarm.hw.tvm_runner import measure

        latency = measure(lib, shape, repeat=20)["latency_ms_median"]
    info = {"target": target_dict, "input_name": iname, "input_shape": list(shape), "dtype": "float32",
            "verified_max_abs_diff": diff, "verified_against": against, "tuned": tune, "latency_ms": latency,
            "lowering": lowering, "tuning_reused": reused,
            "tuning": None if choice is None else dataclasses.asdict(choice)}
    (out_dir / f"{name}.json").write_text(json.dumps(info, indent=2))
    return TvmBuildResult(lib, target_dict, shape, diff, time.time() - t0, onnx_path, against, tune, latency, reused,
                          choice)
