"""Train a zoo model's float checkpoint *into the repo* (``models/pretrained/``), resumably.

The checkpoint directory is the one ``train_float`` looks up first, so every command that trains
this model with its default float recipe and seed starts from it instead of retraining. The
per-epoch ``state.pt`` lives there too: commit it while a long run is unfinished, and re-running
this command continues from the last finished epoch.

    .venv/bin/python bench/train_shipped.py --model cnv --threads 1      # ~160 s/epoch, 30 epochs
    .venv/bin/python bench/train_shipped.py --model tfc --threads 1
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bitswarm.env import read_environment
from bitswarm.models import get_model
from bitswarm.train import evaluate, train
from bitswarm.workflow import PRETRAINED_DIR, float_run_dir, fp_recipe, get_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cnv")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stop-after-epochs", type=int, help="stop after this many epochs in total (resume later)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = read_environment()
    entry = get_model(args.model)
    data = get_data(entry.dataset, args.data_dir, env)
    recipe = fp_recipe(entry.dataset, entry.name)
    ckpt = float_run_dir(entry, data, args.seed, recipe, PRETRAINED_DIR)
    print(f"{entry.name} on {data.note}: {recipe} -> {ckpt}")
    t0 = time.time()
    torch.manual_seed(args.seed)
    model = train(entry.build(entry.uniform_bits(32, 32)), data, recipe, args.seed, ckpt,
                  desc=f"{entry.name} fp", stop_after=args.stop_after_epochs)
    if not (ckpt / "final.pt").exists():
        print(f"stopped after {args.stop_after_epochs} epochs; re-run to continue")
        return
    meta = ckpt / "meta.json"
    info = json.loads(meta.read_text()) if meta.exists() else {}
    info.update({"model": entry.name, "data": data.note, "seed": args.seed, "recipe": recipe.key(),
                 "val_acc": evaluate(model, data.val), "test_acc": evaluate(model, data.test),
                 "threads": args.threads})
    info["wall_s_last_run"] = round(time.time() - t0, 1)
    meta.write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
