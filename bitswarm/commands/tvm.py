"""`bitswarm tvm build|measure|calibrate`: TVM binaries, RPC latency, the calibrated latency table.

Latency does not depend on the weights' values, so these commands use the zoo model's
initial weights (no data, no training).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bitswarm.hw.tvm_lower import LOWERINGS


def _entry_bits(args):
    from bitswarm.boards import load_board
    from bitswarm.models import get_model
    from bitswarm.workflow import parse_bits

    board = load_board(args.board)
    entry = get_model(args.model)
    return entry, parse_bits(args.bits, entry, board.bit_candidates + (32,)), board


def cmd_build(args) -> int:
    from bitswarm.env import read_environment
    from bitswarm.hw.tvm_build import compile_tvm
    from bitswarm.models.export import export_qonnx

    entry, bits, board = _entry_bits(args)
    out = Path(args.out)
    model = entry.build(bits).eval()
    with tempfile.TemporaryDirectory(prefix="bitswarm-tvm-") as tmp:
        q = export_qonnx(model, entry.input_shape, Path(tmp) / "model.qonnx.onnx").path
        r = compile_tvm(q, board, out, tune=args.tune, torch_model=model, tune_trials=args.tune_trials,
                        tune_cache=read_environment().cache_dir, lowering=args.lowering)
    diff = "not run here (cross-compiled)" if r.verified_max_abs_diff is None else \
        f"max |TVM - {r.verified_against}| = {r.verified_max_abs_diff:.2g}"
    lat = f", {r.latency_ms:.3f} ms median on this CPU" if r.latency_ms is not None else ""
    print(f"{r.lib_path} for {json.dumps(r.target)} in {r.seconds:.1f} s; {diff}{lat}")
    return 0


def cmd_measure(args) -> int:
    from bitswarm.hw.cost import Constraint, get_cost_model

    entry, bits, board = _entry_bits(args)
    from bitswarm.env import read_environment

    opts = {"repeat": args.repeat, "threads": args.tvm_threads, "cache_dir": read_environment().cache_dir,
            "lowering": args.lowering}
    if args.table:
        opts["table"] = args.table
    with get_cost_model("tvm", **opts) as cost_model:
        cost = cost_model(entry, bits, board)
    line = f"{entry.name} {bits.short()} on {board.name}: latency {cost['latency_ms']:.4f} ms ({cost.source})"
    if args.max_latency_ms is not None:
        c = Constraint("latency_ms", args.max_latency_ms)
        line += f"; {c.describe()}: violation {c.violation(cost):.3g}"
    print(line)
    return 0


def cmd_calibrate(args) -> int:
    from tqdm import tqdm

    from bitswarm.hw.cost import get_cost_model
    from bitswarm.hw.tvm_table import calibrate

    entry, _, board = _entry_bits(args)
    bar = tqdm(total=args.train + args.test, desc="TVM latency samples", unit="config")
    from bitswarm.env import read_environment

    with get_cost_model("tvm", repeat=args.repeat, threads=args.tvm_threads, lowering=args.lowering,
                        cache_dir=read_environment().cache_dir) as cost_model:
        table = calibrate(entry, board, cost_model, args.train, args.test, args.seed,
                          progress=lambda i, n: bar.update(1))
    bar.close()
    table.save(args.out)
    e = table.error
    print(f"{args.out}: {entry.name} on {board.name}, held-out MAPE {e['test_mape_pct']:.1f}% "
          f"(max {e['test_max_ape_pct']:.1f}%, n={e['test_n']}), train MAPE {e['train_mape_pct']:.1f}%, "
          f"measured {e['measured_ms_min']:.3f}..{e['measured_ms_max']:.3f} ms")
    return 0


def register(sub) -> None:
    sp = sub.add_parser("tvm", help="TVM: build binaries, measure latency over RPC, calibrate the latency table")
    tsub = sp.add_subparsers(dest="tvm_cmd", required=True)

    def common(p, board="host"):
        p.add_argument("--model", default="tfc", help="zoo model name; default tfc")
        p.add_argument("--board", default=board, help=f"board name or YAML path; default {board}")
        p.add_argument("--bits", default="default", help="'default', 'fp', 'wXaY' or a YAML/JSON file")

    b = tsub.add_parser("build", help="QONNX -> QCDQ -> Relax -> library for the board's CPU (x86 verified)")
    common(b)
    b.add_argument("--out", default="tvm-build", help="output directory; default tvm-build")
    b.add_argument("--tune", action="store_true",
                   help="MetaSchedule-tune on this CPU (host targets only; the tuning database is kept in the cache "
                        "and reused); the tuned library is timed against the default schedule and the faster kept "
                        "(16 trials take ~5 min on 2 cores)")
    b.add_argument("--tune-trials", type=int, default=64, help="MetaSchedule trials in all; default 64")
    b.add_argument("--lowering", default="qcdq", choices=LOWERINGS,
                   help="qcdq (float32 compute, as the deploy; default), int (integer codes, int32 sums) or float")
    b.set_defaults(fn=cmd_build)
    for name, fn, hlp in (("measure", cmd_measure, "latency through TVM RPC (the --cost tvm model)"),
                          ("calibrate", cmd_calibrate, "fit the per-layer latency table, report held-out error")):
        p = tsub.add_parser(name, help=hlp)
        common(p)
        p.add_argument("--repeat", type=int, default=30, help="timed repeats per configuration; default 30")
        p.add_argument("--tvm-threads", type=int, default=0, help="TVM threads on the target (0: its default)")
        p.add_argument("--lowering", default="int", choices=LOWERINGS,
                       help="TVM lowering whose latency is measured: int (integer codes, int32 sums; default), "
                            "qcdq or float (dequantized to float32)")
        p.set_defaults(fn=fn)
    m = tsub.choices["measure"]
    m.add_argument("--max-latency-ms", type=float, default=None, help="report the violation of this limit")
    m.add_argument("--table", default=None, help="predict with this calibrated table instead of measuring")
    c = tsub.choices["calibrate"]
    c.add_argument("--train", type=int, default=24, help="random configurations to fit on; default 24")
    c.add_argument("--test", type=int, default=12, help="held-out random configurations; default 12")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default="tvm-latency-table.json", help="table file; default tvm-latency-table.json")
