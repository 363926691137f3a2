"""Training benchmark: float and quantized accuracy on the held-out test split, with wall time.

    .venv/bin/python bench/bench_train.py --model tfc --bits fp w2a2 w1a1 default
    .venv/bin/python bench/bench_train.py --model cnv --bits fp w2a2 --fp-epochs 3 --epochs 2 --max-train 20000
"""

from __future__ import annotations

import argparse
import time

import torch

from bitswarm.boards import load_board
from bitswarm.env import read_environment
from bitswarm.models import get_model
from bitswarm.train import evaluate
from bitswarm.workflow import FP_RECIPES, QAT_RECIPES, finetune_quantized, get_data, parse_bits, scaled, train_float


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tfc")
    ap.add_argument("--bits", nargs="+", default=["fp", "w2a2"])
    ap.add_argument("--fp-epochs", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--max-train", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = read_environment()
    entry = get_model(args.model)
    cands = load_board("host").bit_candidates
    data = get_data(entry.dataset, args.data_dir, env)
    fp_r = scaled(FP_RECIPES[entry.dataset], args.fp_epochs, args.max_train)
    q_r = scaled(QAT_RECIPES[entry.dataset], args.epochs, args.max_train)
    t0 = time.time()
    fp = train_float(entry, data, args.seed, fp_r, env)
    t_fp = time.time() - t0
    print(f"\n{entry.name} on {data.note}; train {len(data.train.subset(fp_r.max_train))} samples, seed {args.seed}")
    print("| bits | recipe | val | test | wall s |\n|---|---|---|---|---|")
    for spec in args.bits:
        if spec == "fp":
            print(f"| float | {fp_r.epochs} ep, lr {fp_r.lr} | {fp.val_acc:.2%} | {evaluate(fp.model, data.test):.2%} "
                  f"| {t_fp:.0f} |")
            continue
        bits = parse_bits(spec, entry, cands)
        t1 = time.time()
        q = finetune_quantized(entry, bits, data, args.seed, q_r, fp, env)
        print(f"| {spec} ({bits.short()}) | QAT {q_r.epochs} ep from float | {q.val_acc:.2%} | "
              f"{evaluate(q.model, data.test):.2%} | {time.time() - t1:.0f} |")


if __name__ == "__main__":
    main()
