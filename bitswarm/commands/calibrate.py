"""`bitswarm calibrate`: fit the FINN surrogate (``--cost surrogate``) to FINN estimates of the model at hand.

Runs finn-plus' estimate on ``--train`` + ``--test`` random configurations (cached on disk), fits
the per-layer tables on the training ones and always reports the error on the held-out ones
(also stored in the file). ``--measured`` adds a correction to measured (post-synthesis) figures.
"""

from __future__ import annotations

from pathlib import Path


def _fmt(q: str, e: dict) -> str:
    return (f"  {q:15s} MAPE {e['mape_pct']:7.3f}%  max {e['max_ape_pct']:7.3f}%  "
            f"mean abs {e['mae']:10.4g}  max abs {e['max_abs']:10.4g}  (n={e['n']}, nonzero {e['n_nonzero']})")


def report(sur) -> list[str]:
    e = sur.error
    lines = [f"held-out error on {e['n_test']} configurations not used for fitting (fit on {e['n_train']}):"]
    lines += [_fmt(q, s) for q, s in e["test"].items()]
    return lines


def cmd_calibrate(args) -> int:
    from tqdm import tqdm

    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.hw.calibrate import calibrate
    from bitswarm.hw.cost_surrogate import default_path
    from bitswarm.models import get_model

    board = load_board(args.board)
    entry = get_model(args.model)
    env = read_environment()
    bar = tqdm(total=args.train + args.test, desc=f"FINN estimates ({entry.name})", unit="config")
    sur, _ = calibrate(entry, board, env.cache_dir, args.train, args.test, args.seed, args.target_fps,
                       progress=lambda i, n: bar.update(1))
    bar.close()
    lines = report(sur)
    if args.measured:
        from bitswarm.hw.correction import apply_measured

        sur, more = apply_measured(sur, entry, board, args.measured, env.cache_dir)
        lines += more
    out = Path(args.out) if args.out else default_path(env.cache_dir, entry.name, board.name, args.target_fps)
    sur.save(out)
    print("\n".join(lines))
    print(f"surrogate written to {out}" + ("" if args.out else " (the default `--cost surrogate` loads)"))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("calibrate", help="fit the FINN surrogate (--cost surrogate) and report its held-out error",
                        description=__doc__.split("\n\n")[1].replace("\n", " "))
    sp.add_argument("--model", default="tfc", help="zoo model name or file.py:fn; default tfc")
    sp.add_argument("--board", default="pynq-z2", help="board name or YAML path (with an fpga section)")
    sp.add_argument("--train", type=int, default=60, help="random configurations to fit on; default 60")
    sp.add_argument("--test", type=int, default=30, help="held-out random configurations; default 30")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--target-fps", type=int, default=10000,
                    help="FINN folding target (the folding policy of --cost finn); default 10000")
    sp.add_argument("--out", default=None, help="surrogate file; default <cache>/surrogate/<model>-<board>-fps<N>.json")
    sp.add_argument("--measured", default=None,
                    help="measured figures (JSON/YAML totals per configuration, or FINN post_synth_resources.json "
                         "with its bits) to fit a correction to")
    sp.set_defaults(fn=cmd_calibrate)
