"""Issue 28, "what inheritance buys": FINN's uniform designs given the same final QAT (same recipe, same
epochs, same seeds) from three starts:

- ``float``: today's start, the float checkpoint (quantizer scales fresh), cross-entropy only;
- ``inherit-kd-float``: the configuration inherited from the trained supernet (BatchNorm re-estimated), trained on
  the labels and distilled from the float model;
- ``inherit-kd-largest``: the same start, distilled from the supernet's largest configuration instead.

Held-out test accuracy per seed, mean ± sd per (design, start), and a one-sided Mann-Whitney U test of each
inherited start against ``float``. Every run is cached by content (a killed benchmark resumes), and each row is
appended to ``--out`` as it is measured.

    BITSWARM_DATA_DIR=../shared/datasets .venv/bin/python bench/bench_inherit.py --model tfc --seeds 3 \
        --threads 1 --out bench/results/inherit-tfc.json
    BITSWARM_DATA_DIR=../shared/datasets .venv/bin/python bench/bench_inherit.py --model cnv --seeds 3 \
        --threads 1 --out bench/results/inherit-cnv.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from bitswarm.atomic import write_text
from bitswarm.boards import load_board
from bitswarm.env import read_environment
from bitswarm.flows.supernet import open_trained
from bitswarm.models import FINN_DESIGNS
from bitswarm.models.supernet import recalibrate_bn
from bitswarm.search.oneshot import sandwich_plan
from bitswarm.train import evaluate
from bitswarm.workflow import Start, finetune_quantized, qat_recipe, set_threads

STARTS = ("float", "inherit-kd-float", "inherit-kd-largest")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tfc")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--starts", default=",".join(STARTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    set_threads(args.threads)
    env, board = read_environment(), load_board(args.board)
    entry, data, fp, spec, shot = open_trained(args.model, board, env)
    largest = recalibrate_bn(shot.net.inherit(sandwich_plan(spec.space).largest), shot.calib)
    recipe = qat_recipe(entry.dataset, entry.name)
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    done = {(r["design"], r["start"], r["seed"]) for r in rows}
    for w, a in FINN_DESIGNS:
        design, bits = f"w{w}a{a}", entry.finn_design_bits(w, a)
        for seed in range(args.seeds):
            for start in args.starts.split(","):
                if (design, start, seed) in done:
                    continue
                t0 = time.time()
                st = None if start == "float" else Start(
                    recalibrate_bn(shot.net.inherit(bits), shot.calib), shot.tag, start.rsplit("-", 1)[1], largest)
                q = finetune_quantized(entry, bits, data, seed, recipe, fp, env, progress=False, start=st)
                rows.append({"design": design, "start": start, "seed": seed, "val": q.val_acc,
                             "test": evaluate(q.model, data.test), "seconds": round(time.time() - t0, 1),
                             "recipe": recipe.key(), "supernet": f"{shot.ckpt_dir.name}@{shot.epochs}",
                             "data": data.note, "device": "cpu"})
                write_text(out, json.dumps(rows, indent=1))
                print(f"{design} {start:20s} seed {seed}: test {rows[-1]['test']:.4f} ({rows[-1]['seconds']} s)",
                      flush=True)
    print(summary(rows, args.model))


def summary(rows: list[dict], model: str) -> str:
    lines = [f"| {model} design | start | seeds | test accuracy (mean ± sd) | one-sided p vs float |",
             "|---|---|---|---|---|"]
    for design in dict.fromkeys(r["design"] for r in rows):
        base = [r["test"] for r in rows if r["design"] == design and r["start"] == "float"]
        for start in STARTS:
            acc = [r["test"] for r in rows if r["design"] == design and r["start"] == start]
            if not acc:
                continue
            p = "" if start == "float" or len(base) < 2 else \
                f"{mannwhitneyu(acc, base, alternative='greater').pvalue:.3f}"
            lines.append(f"| {design} | {start} | {len(acc)} | {100 * np.mean(acc):.2f} ± {100 * np.std(acc):.2f} % "
                         f"| {p} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
