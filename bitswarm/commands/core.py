"""`bitswarm boards`, `bitswarm models` and `bitswarm train`."""

from __future__ import annotations

import argparse
import time


def positive_int(text: str) -> int:
    """argparse ``type=`` of every count (epochs, particles, iterations, budget): an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer; allowed: an integer >= 1")
    return n


def count_type(zero: str):
    """An argparse ``type=`` for a count where 0 has a meaning of its own (``zero``): an integer >= 0."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = -1
        if n < 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a count; allowed: an integer >= 1, or 0 {zero}")
        return n

    return parse


#: a sample count where 0 means every sample
count_or_all = count_type("for all")
#: an epoch count where 0 skips the training
epochs_or_skip = count_type("to skip")

#: seeds are 32-bit (numpy's and torch's generators take them)
MAX_SEED = 2**32 - 1


def seed_type(text: str) -> int:
    """argparse ``type=`` of ``--seed``: an integer in 0..2**32-1."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed; allowed: an integer in 0..{MAX_SEED}")
    return n


def number_in(lo: float | None = None, hi: float | None = None, lo_open: bool = False):
    """An argparse ``type=`` for a finite number in [lo, hi] (``lo_open``: (lo, hi]); NaN and infinities refused."""
    import math

    left = "(" if lo_open else "["
    what = f"a number in {left}{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"

    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            x = math.nan
        ok = math.isfinite(x) and (lo is None or (x > lo if lo_open else x >= lo)) and (hi is None or x <= hi)
        if not ok:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: {what}")
        return x

    return parse


#: a limit of a constraint: a finite number > 0 (NaN would make every candidate feasible)
limit_type = number_in(0.0, lo_open=True)
#: a share of something: a number in [0, 1]
fraction_type = number_in(0.0, 1.0)


def add_common(p: argparse.ArgumentParser, board_default: str = "pynq-z2") -> None:
    """Options shared by every command that trains or evaluates a model."""
    p.add_argument("--model", default="tfc", help="zoo model name (see `bitswarm models`), or a user model as "
                        "path/to/file.py:build or package.module:build returning a torch.nn.Module "
                        "(float or Brevitas); default tfc")
    p.add_argument("--board", default=board_default, help=f"board name or YAML path; default {board_default}")
    p.add_argument("--data-dir", default=None,
                   help="dataset directory in the standard layout (default: the Makefile's "
                        "../shared/datasets, else a checksum-verified download)")
    p.add_argument("--dataset", default=None,
                   help="mnist, cifar10, a folder of images in per-class subfolders, or an .npz with x/y "
                        "(default: the zoo model's dataset; required for a user model)")
    p.add_argument("--weights", default=None, help="float state_dict (.pt) for a user model given as FILE.py:FN")
    p.add_argument("--seed", type=seed_type, default=0, help=f"random seed, 0..{MAX_SEED} (default 0)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: all cores)")


def add_start_options(sp: argparse.ArgumentParser) -> None:
    """Epochs of the float / QAT models that a compression command's ``--from float|ptq|qat`` trains."""
    sp.add_argument("--fp-epochs", type=positive_int, default=None,
                    help="float training epochs for --from float/ptq/qat (default: the dataset's recipe)")
    sp.add_argument("--qat-epochs", type=positive_int, default=None,
                    help="quantization-aware fine-tune epochs for --from qat (default: the dataset's recipe)")


def cmd_boards(args) -> int:
    from bitswarm.boards import list_boards, load_board

    print(f"{'board':<9} {'FPGA part':<22} {'LUT':>7} {'FF':>7} {'BRAM18':>6} {'DSP':>5} {'URAM':>4} "
          f"{'clock':>8}  CPU")
    for name in list_boards():
        b = load_board(name)
        f = b.fpga
        fpga = (f"{f.part:<22} {f.resources['lut']:>7,} {f.resources['ff']:>7,} {f.resources['bram18']:>6} "
                f"{f.resources['dsp']:>5} {f.resources['uram']:>4} {f.clock_mhz:>5.0f}MHz" if f
                else f"{'(no FPGA)':<22} {'':>7} {'':>7} {'':>6} {'':>5} {'':>4} {'':>8}")
        print(f"{name:<9} {fpga}  {b.cpu.description} @ {b.cpu.clock_mhz:.0f} MHz, "
              f"{b.cpu.memory_mb:.0f} MB")
    return 0


def cmd_models(args) -> int:
    from bitswarm.errors import ConfigError
    from bitswarm.models import ZOO

    if args.layers and args.layers not in ZOO:
        raise ConfigError("--layers", "layers", f"unknown model {args.layers!r}", ", ".join(ZOO))
    print(f"{'model':<15} {'dataset':<8} {'layers':>6} {'MMACs':>8} {'params':>9}  description")
    for name, e in ZOO.items():
        macs = sum(s.macs for s in e.specs) / 1e6
        params = sum(s.params for s in e.specs)
        print(f"{name:<15} {e.dataset:<8} {len(e.specs):>6} {macs:>8.2f} {params:>9,}  {e.description}")
    if args.layers:
        e = ZOO[args.layers]
        d = e.default_bits()
        print(f"\nlayers of {args.layers} (default bits; 32 = float):")
        for s in e.specs:
            b = d[s.name]
            print(f"  {s.name:<22} {s.kind:<6} w={b.w!s:<4} a={b.a!s:<4} MACs={s.macs:,}")
    return 0


def cmd_train(args) -> int:
    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.train import evaluate
    from bitswarm.workflow import (
        finetune_quantized,
        fp_recipe,
        qat_recipe,
        resolve_model_and_data,
        scaled,
        set_threads,
        train_float,
    )

    set_threads(args.threads)
    env = read_environment()
    board = load_board(args.board)
    entry, data, bits = resolve_model_and_data(args.model, args.dataset, args.data_dir, env, args.weights,
                                               args.bits, board.bit_candidates + (32,))
    print(f"data: {data.note}: train {len(data.train)}, val {len(data.val)}, test {len(data.test)}")
    t0 = time.time()
    fp = train_float(entry, data, args.seed, scaled(fp_recipe(entry.dataset, entry.name), args.fp_epochs), env)
    print(f"{entry.name} float: val {fp.val_acc:.2%}  test {evaluate(fp.model, data.test):.2%}  "
          f"({time.time() - t0:.0f} s)")
    if args.bits == "fp":
        return 0
    t1 = time.time()
    q = finetune_quantized(entry, bits, data, args.seed, scaled(qat_recipe(entry.dataset, entry.name), args.epochs),
                           fp, env)
    print(f"{entry.name} [{bits.short()}]: val {q.val_acc:.2%}  test {evaluate(q.model, data.test):.2%}  "
          f"({time.time() - t1:.0f} s)")
    print(f"checkpoint: {q.ckpt_dir}")
    return 0


def register(sub) -> None:
    sp = sub.add_parser("boards", help="list board configurations and their capacities")
    sp.set_defaults(fn=cmd_boards)

    sp = sub.add_parser("models", help="list the model zoo")
    sp.add_argument("--layers", metavar="MODEL", help="also list MODEL's layers and default bits")
    sp.set_defaults(fn=cmd_models)

    sp = sub.add_parser("train", help="train float, then quantization-aware fine-tune a bit config",
                        description="Train the float model (cached), then fine-tune the quantized model "
                                    "with the given bits; prints validation and held-out test accuracy.")
    add_common(sp)
    sp.add_argument("--bits", default="default",
                    help="bit config: 'default' (documented edges, 4 bits inside), 'fp', 'wXaY' "
                         "(uniform, e.g. w2a2) or a YAML/JSON file")
    sp.add_argument("--fp-epochs", type=positive_int, default=None, help="float training epochs")
    sp.add_argument("--epochs", type=positive_int, default=None, help="quantization-aware fine-tune epochs")
    sp.set_defaults(fn=cmd_train)
