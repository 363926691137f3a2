"""TVM float path vs TVM integer path vs onnxruntime vs PyTorch, 1 thread, TFC and CNV at several bit-widths.

For each model and bit setting: the Brevitas model (random init, BatchNorm statistics calibrated on
random inputs so that the quantized activations are not all zero: latency does not depend on the
weights, but verification refuses a constant reference) -> QONNX -> three TVM builds of the same
model, each verified against qonnx' executor by ``compile_tvm``:

* ``tvm_before``: QCDQ with the old build (``tvm.compile``'s default Relax pipeline, generic ``llvm``)
* ``tvm_float``: QCDQ with bitswarm's CPU pipeline (fold, fuse, default schedule, ``mcpu`` of this CPU)
* ``tvm_int``: ``lowering="int"`` (int8 codes, int32 sums; same pipeline)
* ``tvm_int_tuned``: ``--tune``: the same, MetaSchedule-tuned for ``--tune-trials`` trials (settings in
  ``--tune-bits``; the tuning database kept in ``--tune-cache`` so that a re-run reuses it: ``tuning_reused``),
  the faster of the tuned and the default-schedule library kept (``tuning_kept``; the MetaSchedule
  library's own time: ``metaschedule_ms``)

plus onnxruntime on the QCDQ ONNX and PyTorch on the Brevitas model. Median of ``--repeat`` timings
(each ~1 ms of calls), batch 1, 1 thread::

    TVM_NUM_THREADS=1 OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_tvm_int.py \\
        --models tfc cnv --bits default w2a2 w4a4 w8a8 --tune-trials 64 --tune-bits default \\
        --tune-cache bench/results/tvm-tuning --out bench/results/tvm_int.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_tvm import median_ms  # bench/ is the script's directory
from torch import nn


def calibrated(model: nn.Module, shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    """BatchNorm running statistics from random inputs in [-1, 1]; quantizers untouched."""
    g = torch.Generator().manual_seed(seed)
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
            m.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand((32, *shape), generator=g) * 2 - 1)
    return model.eval()


def _bits(entry, spec: str):
    if spec == "default":
        return entry.default_bits()
    w, a = spec.lstrip("w").split("a")
    return entry.uniform_bits(int(w), int(a))


def _tvm_before(onnx_path: Path, out: Path) -> Path:
    """The build as it was: default Relax pipeline (legalize only), generic x86-64 target."""
    import tvm

    from bitswarm.hw.tvm_build import import_onnx

    lib = out / "before.so"
    tvm.compile(import_onnx(onnx_path), tvm.target.Target({"kind": "llvm"})).export_library(str(lib))
    return lib


def _diffs(lib_a: Path, lib_b: Path, shape, n: int = 8) -> tuple[float, int]:
    """Max |a - b| over ``n`` fresh inputs, and on how many inputs it exceeds 1e-4 (a quantization code
    flipped at a rounding tie: the two libraries sum in a different order)."""
    from bitswarm.hw.tvm_build import run_library

    rng = np.random.default_rng(99)
    xs = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(n)]
    d = [float(np.abs(run_library(lib_a, x) - run_library(lib_b, x)).max()) for x in xs]
    return max(d), sum(v > 1e-4 for v in d)


def _build(q: Path, out: Path, lowering: str, **tune):
    """``compile_tvm`` verified against qonnx' executor; when that fails, the error and an unverified build
    (latency does not depend on it; e.g. a code flipped at a rounding tie at 8 bits)."""
    from bitswarm.boards import load_board
    from bitswarm.hw.tvm_build import TvmVerifyError, compile_tvm

    try:
        return compile_tvm(q, load_board("host"), out, lowering=lowering, **tune), None
    except TvmVerifyError as e:
        return compile_tvm(q, load_board("host"), out, lowering=lowering, verify=False, **tune), str(e)


def bench(name: str, spec: str, repeat: int, tmp: Path, tune: dict | None = None) -> dict:
    import onnxruntime as ort

    from bitswarm.hw.tvm_runner import measure
    from bitswarm.models import get_model
    from bitswarm.models.export import ExportMismatchError, export_qonnx

    entry = get_model(name)
    bits = _bits(entry, spec)
    torch.manual_seed(0)
    model = calibrated(entry.build(bits), entry.input_shape)
    out = tmp / f"{name}-{spec}"
    try:
        q, export_note = export_qonnx(model, entry.input_shape, out / "model.qonnx.onnx").path, None
    except ExportMismatchError as e:  # QONNX vs PyTorch: TVM is verified against the QONNX file anyway
        q, export_note = export_qonnx(model, entry.input_shape, out / "model.qonnx.onnx", verify=False).path, str(e)
    fl, fl_err = _build(q, out / "float", "qcdq")
    it, it_err = _build(q, out / "int", "int")
    before = _tvm_before(fl.onnx_path, out)
    shape = fl.input_shape
    row = {"model": name, "bits": bits.short(), "spec": spec, "threads": 1, "export_mismatch": export_note,
           "float_verify_error": fl_err, "int_verify_error": it_err}
    libs = [("tvm_before_ms", before), ("tvm_float_ms", fl.lib_path), ("tvm_int_ms", it.lib_path)]
    if tune:
        tuned, row["int_tuned_verify_error"] = _build(q, out / "int-tuned", "int", tune=True, **tune)
        libs.append(("tvm_int_tuned_ms", tuned.lib_path))
        row.update(tuning_kept=tuned.tuning_kept, metaschedule_ms=tuned.tuning.tuned_ms,
                   tune_trials=tune["tune_trials"], tuning_reused=tuned.tuning_reused,
                   tune_seconds=round(tuned.seconds, 1), int_tuned_vs_qonnx=tuned.verified_max_abs_diff)
    for key, lib in libs:
        row[key] = measure(lib, shape, repeat=repeat, threads=1)["latency_ms_median"]
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(fl.onnx_path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    iname = sess.get_inputs()[0].name
    row["onnxruntime_ms"] = median_ms(lambda: sess.run(None, {iname: x}), repeat)
    torch.set_num_threads(1)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        row["torch_ms"] = median_ms(lambda: model(xt), repeat)
    row.update(float_vs_qonnx=fl.verified_max_abs_diff, int_vs_qonnx=it.verified_max_abs_diff,
               int_vs_float=None, int_vs_float_flips=None)
    row["int_vs_float"], row["int_vs_float_flips"] = _diffs(it.lib_path, fl.lib_path, shape)
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> str:
    head = ("| model | bits | TVM before (ms) | TVM float (ms) | TVM int (ms) | int, MetaSchedule (ms) "
            "| TVM int + tuned = faster kept (ms) "
            "| onnxruntime (ms) | PyTorch (ms) | int + tuned / onnxruntime "
            "| max \\|int - float\\| (inputs > 1e-4 of 8) |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        fl, it, tu = ("*" if r.get(f"{k}_verify_error") else "" for k in ("float", "int", "int_tuned"))
        tuned = r.get("tvm_int_tuned_ms")
        t_cell, ratio = ("–", "–") if tuned is None else (f"{tuned:.3f}{tu}", f"{tuned / r['onnxruntime_ms']:.2f}x")
        ms = "–" if r.get("metaschedule_ms") is None else f"{r['metaschedule_ms']:.3f}"
        lines.append(f"| {r['model']} | {r['spec']} | {r['tvm_before_ms']:.3f} | {r['tvm_float_ms']:.3f}{fl} | "
                     f"{r['tvm_int_ms']:.3f}{it} | {ms} | {t_cell} | {r['onnxruntime_ms']:.3f} | {r['torch_ms']:.3f} | "
                     f"{ratio} | {r['int_vs_float']:.2g} ({r['int_vs_float_flips']}) |")
    if any(r.get(f"{k}_verify_error") for r in rows for k in ("float", "int", "int_tuned")):
        lines.append("\n\\* failed verification against qonnx' executor (see the JSON); timed unverified")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["tfc", "cnv"])
    p.add_argument("--bits", nargs="+", default=["default", "w2a2", "w4a4", "w8a8"],
                   help="'default' or wNaM (uniform N-bit weights, M-bit activations)")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--tune-trials", type=int, default=0, help="MetaSchedule trials of the tuned int build (0: none)")
    p.add_argument("--tune-bits", nargs="+", default=["default"], help="the settings tuned (tuning takes minutes)")
    p.add_argument("--tune-cache", default=None, help="directory that keeps the tuning databases (re-runs reuse them)")
    p.add_argument("--out", default=None, help="JSON file for the rows")
    args = p.parse_args()
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="bench-tvm-int-") as d:
        for m in args.models:
            for b in args.bits:
                try:
                    tune = {"tune_trials": args.tune_trials, "tune_cache": args.tune_cache and Path(args.tune_cache)} \
                        if args.tune_trials and b in args.tune_bits else None
                    rows.append(bench(m, b, args.repeat, Path(d), tune))
                except Exception as e:  # noqa: BLE001 - one failed setting is reported, the others still run
                    failed.append({"model": m, "spec": b, "error": f"{type(e).__name__}: {e}"})
                    print(json.dumps(failed[-1]), flush=True)
    print(table(rows))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"rows": rows, "failed": failed}, indent=1))


if __name__ == "__main__":
    main()
