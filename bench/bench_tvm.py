"""TVM (untuned, Relax, llvm) vs onnxruntime vs PyTorch latency on the same model and CPU.

For each model: the Brevitas model at the given bits -> QONNX -> QCDQ ONNX; TVM compiles that
ONNX (and the ``float`` lowering of the same quantizers); onnxruntime runs the same QCDQ ONNX;
PyTorch runs the Brevitas model (fake-quantized). Batch 1, median of ``--repeat`` timings
(each ~1 ms of calls), with 1 and 2 threads. Then TVM latency vs
uniform bit-width (TVM dequantizes to float32; does the bit-width matter?).

    nice .venv/bin/python bench/bench_tvm.py --models tfc cnv --repeat 30 --tune-models tfc --tune-trials 16 \
        --out bench/results/tvm.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def median_ms(fn, repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(3):
        fn()
    number = max(1, int(1e-3 / max((time.perf_counter() - t0) / 3, 1e-7)))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number * 1e3)
    return float(np.median(times))


def bench_model(name: str, w: int, a: int, repeat: int, threads: list[int], tmp: Path,
                tune_trials: int = 0) -> list[dict]:
    import onnxruntime as ort

    from bitswarm.boards import load_board
    from bitswarm.hw.tvm_build import compile_tvm
    from bitswarm.hw.tvm_runner import measure
    from bitswarm.models import get_model
    from bitswarm.models.export import export_qonnx

    entry = get_model(name)
    bits = entry.uniform_bits(w, a, keep_first_last=True)
    model = entry.build(bits).eval()
    q = export_qonnx(model, entry.input_shape, tmp / f"{name}.qonnx.onnx").path
    build = compile_tvm(q, load_board("host"), tmp / f"{name}-tvm", torch_model=model)
    fbuild = compile_tvm(q, load_board("host"), tmp / f"{name}-tvm-float", torch_model=model, lowering="float")
    tbuild, tune_s = None, None
    if tune_trials:
        t0 = time.time()
        tbuild = compile_tvm(q, load_board("host"), tmp / f"{name}-tvm-tuned", torch_model=model, tune=True,
                             tune_trials=tune_trials)
        tune_s = time.time() - t0
    x = np.random.default_rng(0).uniform(-1, 1, build.input_shape).astype(np.float32)
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        tvm_ms = measure(build.lib_path, build.input_shape, repeat=repeat, threads=n)["latency_ms_median"]
        tvm_float_ms = measure(fbuild.lib_path, fbuild.input_shape, repeat=repeat, threads=n)["latency_ms_median"]
        tuned_ms = measure(tbuild.lib_path, tbuild.input_shape, repeat=repeat, threads=n)["latency_ms_median"] \
            if tbuild else None
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = n, 1
        sess = ort.InferenceSession(str(build.onnx_path), so, providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        ort_ms = median_ms(lambda s=sess, i=iname: s.run(None, {i: x}), repeat)
        xt = torch.from_numpy(x)
        with torch.no_grad():
            torch_ms = median_ms(lambda xt=xt: model(xt), repeat)
        rows.append({"model": name, "bits": bits.short(), "threads": n, "tvm_untuned_ms": tvm_ms,
                     "tvm_untuned_float_lowering_ms": tvm_float_ms,
                     "tvm_tuned_ms": tuned_ms, "tune_trials": tune_trials or None, "tune_seconds": tune_s,
                     "onnxruntime_ms": ort_ms, "torch_brevitas_ms": torch_ms,
                     "tvm_vs_torch_max_abs_diff": build.verified_max_abs_diff,
                     "tvm_float_lowering_vs_torch_max_abs_diff": fbuild.verified_max_abs_diff})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bits_sweep(name: str, widths: list[int], repeat: int, tmp: Path) -> list[dict]:
    from bitswarm.boards import load_board
    from bitswarm.hw.tvm_build import compile_tvm
    from bitswarm.hw.tvm_runner import measure
    from bitswarm.models import get_model
    from bitswarm.models.export import export_qonnx

    entry = get_model(name)
    rows = []
    for b in widths:
        bits = entry.uniform_bits(b, b)
        q = export_qonnx(entry.build(bits), entry.input_shape, tmp / f"{name}-{b}.onnx", verify=False).path
        build = compile_tvm(q, load_board("host"), tmp / f"{name}-{b}-tvm", verify=False)
        r = measure(build.lib_path, build.input_shape, repeat=repeat, threads=1)
        rows.append({"model": name, "uniform_bits": b, "threads": 1, "tvm_ms_median": r["latency_ms_median"],
                     "tvm_ms_min": r["latency_ms_min"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["tfc", "cnv"])
    p.add_argument("--w", type=int, default=4)
    p.add_argument("--a", type=int, default=4)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--sweep-model", default="tfc")
    p.add_argument("--sweep-bits", nargs="*", type=int, default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--tune-models", nargs="*", default=["tfc"], help="also MetaSchedule-tune these")
    p.add_argument("--tune-trials", type=int, default=16)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tvm-") as d:
        tmp = Path(d)
        rows = [r for m in args.models for r in bench_model(
            m, args.w, args.a, args.repeat, args.threads, tmp, args.tune_trials if m in args.tune_models else 0)]
        sweep = bits_sweep(args.sweep_model, args.sweep_bits, args.repeat, tmp) if args.sweep_bits else []
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"compare": rows, "bits_sweep": sweep}, indent=1))


if __name__ == "__main__":
    main()
