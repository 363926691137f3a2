"""`bitswarm deploy` and `bitswarm report`."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path

from bitswarm.commands.core import add_common, count_type, positive_int

RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def run_id(text: str) -> str:
    """argparse ``type=`` of ``--run-id``: a plain directory name (no ``/``, ``..``, hidden or option-like)."""
    if not RUN_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain name; allowed: letters, digits, '-', '_', '.', "
                                         "not starting with '.' or '-'")
    return text


def cmd_deploy(args) -> int:
    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.flows.deploy import DeployConfig, deploy
    from bitswarm.flows.deploy_search import profile_for
    from bitswarm.workflow import set_threads

    set_threads(args.threads)
    if args.config and args.qonnx:  # a QONNX file carries its own bits: the config would be ignored
        from bitswarm.errors import ConfigError

        raise ConfigError("--config", "config", "given with --qonnx, whose model already carries its bit-widths",
                          "--config (train and deploy that configuration) or --qonnx (deploy that file), not both")
    board = load_board(args.board)
    model = args.model
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model.split(":")[0]).stem)
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S-") + stem
    cfg = DeployConfig(board=board, env=read_environment(), model=model, dataset=args.dataset,
                       data_dir=args.data_dir, weights=args.weights, bits_file=args.config, qonnx=args.qonnx,
                       seed=args.seed, search={"particles": args.particles, "iters": args.iters,
                               "cost": args.cost or profile_for(model).cost, "fitness": args.fitness},
                       fp_epochs=args.fp_epochs, qat_epochs=args.epochs, out_root=Path(args.out), run_id=run_id,
                       command=" ".join(shlex.quote(a) for a in ["bitswarm", *sys.argv[1:]]), tvm=not args.no_tvm,
                       verify_samples=args.verify_samples, target_fps=args.target_fps, board_step=not args.no_board)
    t0 = time.time()
    pkg = deploy(cfg, on_step=lambda name: print(f"[deploy {time.time() - t0:6.1f}s] {name}", flush=True),
                 start_at=args.start_at, stop_after=args.stop_after)
    if pkg.name.startswith(".partial-"):
        print(f"stopped after step '{args.stop_after}'; {pkg} holds the work so far: run the same command to "
              "continue (or --start-at STEP)")
        return 0
    import json

    summary = json.loads((pkg / "summary.json").read_text())
    acc, finn = summary.get("accuracy") or {}, summary.get("finn") or {}
    if acc:
        print(f"accuracy ({summary.get('dataset_note')}): float test {acc['fp_test']:.2%}, "
              f"quantized val {acc['val']:.2%}, quantized test {acc['test']:.2%}")
    ver = finn.get("verification")
    if ver:
        a = ver.get("accuracy") or {}
        print(f"FINN build verified: {len(ver['levels'])} levels match the QONNX model on {ver['n_inputs']} test "
              f"images ({ver['seconds']:.0f} s); accuracy " + ", ".join(f"{k} {v:.2%}" for k, v in a.items()))
    elif finn.get("total"):
        print("FINN build NOT verified (--verify-samples 0)")
    if finn.get("total"):
        t = finn["total"]
        print(f"FINN estimate: {t['lut']:,.0f} LUT, {t['bram18']:.0f} BRAM18, {t['dsp']:.0f} DSP, "
              f"{t['throughput_fps']:,.0f} FPS")
    if finn.get("missing_tool") or finn.get("unsupported"):
        print(f"FINN: {finn.get('missing_tool') or finn.get('unsupported')}")
    print(f"package: {pkg}  ({time.time() - t0:.0f} s)\nreport:  {pkg / 'report.html'}")
    return 0


def cmd_report(args) -> int:
    from bitswarm.flows.report import report_run

    paths = report_run(args.run_dir)
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("deploy", help="search, train, export and build a deployable package with a report",
                        description="The main job: bits (given or found by a small search) -> QONNX -> FINN "
                                    "(FPGA) and TVM (CPU) -> deploy/<board>/<run-id>/ with a hardware report. "
                                    "The package appears only when every step succeeded.")
    add_common(sp)
    sp.add_argument("--config", help="bit configuration YAML/JSON to deploy without searching")
    sp.add_argument("--qonnx", help="deploy this QONNX file as it is (no search, no training)")
    sp.add_argument("--out", default="deploy", help="output root (default deploy/)")
    sp.add_argument("--run-id", type=run_id, help="package name (default: timestamp-model)")
    sp.add_argument("--particles", type=positive_int, default=6, help="search swarm size (default 6: a small budget)")
    sp.add_argument("--iters", type=positive_int, default=4, help="search iterations (default 4)")
    sp.add_argument("--no-board", action="store_true",
                    help="skip the board step (pushing and timing the package over ssh on the board named in the "
                         "board config); without it, an unreachable board is refused before any work")
    sp.add_argument("--fitness", default="auto", choices=("auto", "oneshot", "qat"),
                    help="how the search scores a candidate: oneshot (the trained supernet, no training; the winner's "
                         "QAT then starts from its inherited weights), qat (a short fine-tune each), auto (default: "
                         "oneshot where `bitswarm supernet` trained one for the model and board)")
    sp.add_argument("--cost", default=None, choices=("finn", "surrogate", "bitops"),
                    help="cost model of the search: finn (FINN estimates + bit metrics; TFC's default: LUT within "
                         "FINN's limit and avg bits <= 3), surrogate (the calibrated FINN surrogate; CNV's default: "
                         "LUT and BRAM18 within FINN's limits at 3,000 FPS) or bitops (bit metrics only)")
    sp.add_argument("--target-fps", type=positive_int, default=None,
                    help="FINN folding target of the search and the build (default: 10000; CNV 3000)")
    sp.add_argument("--fp-epochs", type=positive_int, default=None, help="float training epochs")
    sp.add_argument("--epochs", type=positive_int, default=None, help="quantization-aware fine-tune epochs")
    sp.add_argument("--no-tvm", action="store_true", help="skip the TVM binary")
    steps = "bits, train, export, finn, tvm, uniform, board, report, manifest"
    sp.add_argument("--start-at", metavar="STEP", help=f"start at this step of an unfinished deploy ({steps}); "
                    "by default a re-run of the same command resumes at its first unfinished step")
    sp.add_argument("--stop-after", metavar="STEP", help="stop after this step (the package stays unfinished)")
    sp.add_argument("--verify-samples", type=count_type("to skip the check"), default=None,
                    help="test images FINN's graphs are checked on against the QONNX model (default 1000; CNV 200; "
                         "0 skips the check - the report then says the build is unverified)")
    sp.set_defaults(fn=cmd_deploy)

    sp = sub.add_parser("report", help="(re)write the hardware report of a run directory",
                        description="Reads RUN_DIR/summary.json; writes report.html (self-contained), "
                                    "report.md and report.json.")
    sp.add_argument("run_dir", help="a deploy/<board>/<run-id>/ directory")
    sp.set_defaults(fn=cmd_report)
