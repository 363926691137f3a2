"""Issue 16: is a cheaper search fitness ranking configurations like the full-recipe fitness?

For ``--n`` random configurations that meet the constraint (bit metrics, exact), each fidelity
(a fine-tune recipe + validation size, below) is run from the shipped float weights; the table gives
seconds per evaluation, the speed-up over ``full`` and Spearman's rho against ``full``. Every result
is appended to ``--out`` as it is measured, so a killed run resumes where it stopped.

    BITSWARM_DATA_DIR=../shared/datasets .venv/bin/python bench/bench_fitness.py --model tfc --n 30 \
        --max-avg-bits 3 --threads 1 --out bench/results/fitness-tfc.json
    BITSWARM_DATA_DIR=../shared/datasets .venv/bin/python bench/bench_fitness.py \
        --model bench/models/cifar_smallcnn.py:build --dataset cifar10 --fp-epochs 10 --n 30 --max-avg-bits 4 \
        --fidelities full,full-seed1,e2-n8000,e1-n8000,e1-n2000 --threads 1 --out bench/results/fitness-cifar.json
    BITSWARM_DATA_DIR=../shared/datasets .venv/bin/python bench/bench_fitness.py --model cnv --n 2 --max-avg-bits 4 \
        --fidelities e1-n2000,e1-n5000,e2-n8000 --threads 1 --out bench/results/fitness-cnv.json   # seconds only
    # issue 28: the one-shot fitness (the shipped supernet: `bitswarm supernet`) on the same 30 configurations,
    # BatchNorm re-estimated on K training images (oneshot-nK; oneshot: the default K)
    BITSWARM_DATA_DIR=../shared/datasets .venv/bin/python bench/bench_fitness.py --model tfc --n 30 \
        --max-avg-bits 3 --fidelities oneshot-n100,oneshot-n500,oneshot,oneshot-n8000 --threads 1 \
        --out bench/results/fitness-tfc.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from bitswarm.boards import load_board
from bitswarm.env import read_environment
from bitswarm.hw.cost import Constraint, get_cost_model
from bitswarm.search.api import build_space
from bitswarm.search.bbpso import random_position
from bitswarm.search.oneshot import CALIB_IMAGES, how_to_train, open_oneshot
from bitswarm.search.problem import EVAL_RECIPE, QuantProblem
from bitswarm.workflow import fp_recipe, resolve_model_and_data, scaled, set_threads, train_float

#: name -> (fine-tune recipe, validation images, seed); ``full`` is the paper's §5.3.1 recipe (2 epochs,
#: all data); ``full-seed1`` is the same with another seed: its rank correlation with ``full`` is the
#: ceiling any cheaper fidelity can reach (the full recipe's own noise)
FIDELITIES = {
    "full": (EVAL_RECIPE, None, 0),
    "full-seed1": (EVAL_RECIPE, None, 1),
    "e2-n8000": (replace(EVAL_RECIPE, max_train=8000), None, 0),
    "e1-n16000": (replace(EVAL_RECIPE, epochs=1, max_train=16000), None, 0),
    "e1-n8000-vall": (replace(EVAL_RECIPE, epochs=1, max_train=8000), None, 0),
    "e1-n8000": (replace(EVAL_RECIPE, epochs=1, max_train=8000), 2000, 0),
    "e1-n5000": (replace(EVAL_RECIPE, epochs=1, max_train=5000), 1000, 0),  # the CNV deploy's search fitness
    "e1-n4000": (replace(EVAL_RECIPE, epochs=1, max_train=4000), 2000, 0),
    "e1-n2000": (replace(EVAL_RECIPE, epochs=1, max_train=2000), 1000, 0),
    "e1-n2000-lr0.03": (replace(EVAL_RECIPE, epochs=1, max_train=2000, lr=0.03), 1000, 0),
}


def configurations(entry, board, limit: float, n: int, seed: int) -> list:
    space = build_space(entry, board, "bitops")
    cost, rng, out = get_cost_model("bitops"), np.random.default_rng(seed), []
    while len(out) < n:
        bits = space.to_bits(random_position(space, rng))
        if cost(entry, bits)["avg_bits"] <= limit and bits not in out:
            out.append(bits)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tfc", help="zoo name or path/to/file.py:build (then --dataset)")
    ap.add_argument("--dataset", default=None, help="a user model's dataset (e.g. cifar10)")
    ap.add_argument("--fp-epochs", type=int, default=None, help="float training epochs (as `bitswarm compare`'s)")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--max-avg-bits", type=float, default=3.0)
    ap.add_argument("--fidelities", default=",".join(FIDELITIES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    set_threads(args.threads)
    env, board = read_environment(), load_board("pynq-z2")
    entry, data, _ = resolve_model_and_data(args.model, args.dataset, None, env)
    fp = train_float(entry, data, 0, scaled(fp_recipe(entry.dataset, entry.name), args.fp_epochs), env,
                     progress=False).model
    fp_state = {k: v.detach().clone() for k, v in fp.state_dict().items()}
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    done = {(r["bits"], r["fidelity"]) for r in rows}
    constraint = (Constraint("avg_bits", args.max_avg_bits),)
    shots = {}  # "oneshot" (CALIB_IMAGES) or "oneshot-nK": the trained supernet, BatchNorm re-estimated on K images
    for name in args.fidelities.split(","):
        if name.startswith("oneshot"):
            k = int(name.split("-n")[1]) if "-n" in name else CALIB_IMAGES
            shots[name] = open_oneshot(entry, board, data, fp_state, env.cache_dir, calib_images=k)
            if shots[name] is None:
                raise SystemExit(how_to_train(entry, board))
    for i, bits in enumerate(configurations(entry, board, args.max_avg_bits, args.n, args.seed)):
        for name in args.fidelities.split(","):
            if (bits.short(), name) in done:
                continue
            recipe, val, seed = FIDELITIES.get(name, (EVAL_RECIPE, None, 0))
            problem = QuantProblem(entry, data, fp_state, board, get_cost_model("bitops"), constraint, recipe, val,
                                   seed, oneshot=shots.get(name))
            t0 = time.time()
            fitness = problem.fine_tune_and_validate(bits)
            rows.append({"bits": bits.short(), "fidelity": name, "fitness": fitness, "seconds": time.time() - t0,
                         **({"supernet": f"{shots[name].ckpt_dir.name}@{shots[name].epochs}"} if name in shots
                            else {})})
            out.write_text(json.dumps(rows, indent=1))
            print(f"[{i + 1}/{args.n}] {name:16s} {bits.short():40s} {fitness:.4f} {rows[-1]['seconds']:.1f}s",
                  flush=True)
    print(summary(rows, args.model))


def summary(rows: list[dict], model: str) -> str:
    by = {}
    for r in rows:
        by.setdefault(r["fidelity"], {})[r["bits"]] = r
    full = by.get("full", {})
    lines = [f"| {model} fidelity | configs | s / evaluation | speed-up vs full | Spearman vs full | Kendall vs full |",
             "|---|---|---|---|---|---|"]
    t_full = np.mean([r["seconds"] for r in full.values()]) if full else float("nan")
    for name, got in by.items():
        common = sorted(set(got) & set(full))
        a, b = [got[c]["fitness"] for c in common], [full[c]["fitness"] for c in common]
        rho, tau = (spearmanr(a, b)[0], kendalltau(a, b)[0]) if len(common) > 2 else (float("nan"), float("nan"))
        t = np.mean([r["seconds"] for r in got.values()])
        lines.append(f"| {name} | {len(got)} | {t:.2f} | {t_full / t:.1f}x | {rho:.3f} | {tau:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
