"""`bitswarm calibrate`: fit the FINN surrogate (``--cost surrogate``) to FINN estimates of the model at hand.

Runs finn-plus' estimate on ``--train`` + ``--test`` random configurations (cached on disk; one in
four from the low-bit corner, where FINN budgets bind), fits the per-layer tables on the training ones
and always reports the error on the held-out ones (also stored in the file). ``--measured`` adds a
correction to measured (post-synthesis) figures.
A user model (``--model file.py:fn``) needs only its input shape (``--input-shape C,H,W``, or a
``--dataset`` that implies it): calibration reads no data.
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
    if e.get("test_low"):
        lines.append(f"of which the {e['n_test_low']} low-bit ones (each variable at one of its two lowest bits):")
        lines += [_fmt(q, s) for q, s in e["test_low"].items()]
    return lines


def parse_shape(text: str) -> tuple[int, ...]:
    from bitswarm.errors import ConfigError

    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError("--input-shape", "input shape", f"cannot read {text!r}", "C,H,W, e.g. 3,32,32")
    return shape


def resolve_entry(model: str, dataset: str | None, input_shape: str | None, weights: str | None, env):
    """The model to calibrate; a user model's input shape from ``--input-shape`` (no data read), else from
    ``--dataset`` (mnist/cifar10: known; a folder or .npz: read, as `bitswarm search` does)."""
    from bitswarm.errors import ConfigError
    from bitswarm.models import ZOO, get_model
    from bitswarm.models.custom import DATASET_SHAPES

    shape = parse_shape(input_shape) if input_shape else None
    if model in ZOO or ":" not in model:
        return _zoo_entry(get_model(model), dataset, shape, weights)
    if shape is None and dataset is None:
        raise ConfigError("--input-shape", "input shape", f"a user model ({model}) needs its input shape",
                          "--input-shape C,H,W (e.g. 3,32,32), or --dataset mnist/cifar10/a folder/an .npz")
    if shape is None and dataset not in DATASET_SHAPES:
        from bitswarm.workflow import get_data

        shape = tuple(get_data(dataset, None, env).input_shape)
    if dataset is None:
        dataset = next((d for d, s in DATASET_SHAPES.items() if s == shape), "custom")
    return get_model(model, weights=weights, dataset=dataset, input_shape=shape)


def _zoo_entry(entry, dataset, shape, weights):
    """A zoo model as it is: a different dataset, input shape or weights would be another model."""
    from bitswarm.errors import ConfigError

    for flag, given, own in (("--dataset", dataset, entry.dataset), ("--input-shape", shape, tuple(entry.input_shape)),
                             ("--weights", weights, None)):
        if given is not None and given != own:
            raise ConfigError(flag, flag[2:], f"zoo model {entry.name} is calibrated as it is "
                              f"({entry.dataset}, input {','.join(map(str, entry.input_shape))})",
                              f"omit {flag}; it is for a user model (file.py:fn)")
    return entry


def cmd_calibrate(args) -> int:
    from tqdm import tqdm

    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.hw.calibrate import calibrate
    from bitswarm.hw.cost_surrogate import default_path

    board = load_board(args.board)
    env = read_environment()
    entry = resolve_entry(args.model, args.dataset, args.input_shape, args.weights, env)
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
    sp.add_argument("--dataset", default=None,
                    help="a user model's dataset, for its input shape: mnist, cifar10, a folder or an .npz")
    sp.add_argument("--input-shape", default=None,
                    help="a user model's input C,H,W (e.g. 3,32,32); enough on its own (no data read)")
    sp.add_argument("--weights", default=None, help="a user model's float state_dict (as for `bitswarm search`)")
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
