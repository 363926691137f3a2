"""Record a shipped supernet's one-shot accuracies (``<checkpoint>/scores.json``), which the tests check it reaches.

For the largest and smallest configurations of the board's space, FINN's uniform designs and a few random
configurations: the one-shot accuracy (inherit, BatchNorm re-estimated on the default calibration images) on the
first ``--test-samples`` test images, and the seconds each score took.

    BITSWARM_DATA_DIR=../shared/datasets .venv/bin/python bench/supernet_scores.py --model tfc --threads 1
    BITSWARM_DATA_DIR=../shared/datasets .venv/bin/python bench/supernet_scores.py --model cnv --threads 1 \
        --test-samples 1000
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bitswarm.atomic import write_text
from bitswarm.boards import load_board
from bitswarm.env import read_environment
from bitswarm.flows.supernet import open_trained
from bitswarm.models import FINN_DESIGNS
from bitswarm.search.oneshot import sandwich_plan
from bitswarm.workflow import set_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tfc")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--random", type=int, default=3, help="random configurations besides the named ones")
    ap.add_argument("--test-samples", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    set_threads(args.threads)
    env, board = read_environment(), load_board(args.board)
    entry, data, _, spec, shot = open_trained(args.model, board, env)
    plan = sandwich_plan(spec.space)
    g = torch.Generator().manual_seed(0)
    named = [("largest", plan.largest), ("smallest", plan.smallest)]
    named += [(f"finn-w{w}a{a}", entry.finn_design_bits(w, a)) for w, a in FINN_DESIGNS]
    named += [(f"random{i}", plan.sample(g)) for i in range(args.random)]
    test = data.test.subset(args.test_samples)
    rows = []
    for name, bits in named:
        t0 = time.time()
        acc = shot.score(bits, test)
        rows.append({"name": name, "bits": bits.to_dict()["layers"], "oneshot_test": acc,
                     "seconds": round(time.time() - t0, 2)})
        print(f"{name:12s} {bits.short():70s} {acc:.4f} ({rows[-1]['seconds']} s)", flush=True)
    out = {"supernet": shot.ckpt_dir.name, "epochs": shot.epochs, "test_samples": args.test_samples,
           "calib_images": len(shot.calib), "data": data.note, "device": "cpu", "configurations": rows}
    write_text(shot.ckpt_dir / "scores.json", json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
