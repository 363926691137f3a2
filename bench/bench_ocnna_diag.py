"""Which filters does OCNNA's importance favour? Rank correlation of each filter's importance
(CV of the PCA-Frobenius norms, Eq. 6) with its mean activation and its share of zero outputs,
on the float model and the D_var images bench_compress.py's ocnna part uses (seed 0 block).

    nice .venv/bin/python bench/bench_ocnna_diag.py --dataset cifar10 --data-dir ../shared/datasets
    nice .venv/bin/python bench/bench_ocnna_diag.py --dataset cifar10 --model cnv --fp-epochs 5 ...
"""

from __future__ import annotations

import argparse

import torch
from scipy.stats import spearmanr

from bitswarm.env import read_environment
from bitswarm.search.compress import nets, ocnna, surgery
from bitswarm.workflow import FP_RECIPES, get_data, scaled, train_float

MODELS = {"mnist": ("smallcnn", None), "cifar10": ("cifar-smallcnn", 10)}  # default model, float epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=tuple(MODELS), default="cifar10")
    ap.add_argument("--data-dir")
    ap.add_argument("--dvar", type=int, default=500)
    ap.add_argument("--model", help="another CIFAR-10/MNIST chain model, e.g. cnv (with --fp-epochs)")
    ap.add_argument("--fp-epochs", type=int)
    args = ap.parse_args()
    torch.set_num_threads(1)
    env = read_environment()
    name, epochs = MODELS[args.dataset]
    name, epochs = args.model or name, args.fp_epochs or epochs
    data = get_data(args.dataset, args.data_dir, env)
    e = nets.entry(name)
    model = train_float(e, data, 0, scaled(FP_RECIPES[e.dataset], epochs), env, progress=False).model.eval()
    outs = ocnna.layer_outputs(model, surgery.sites(model, name), data.train.subset(args.dvar))
    print(f"{name} float, {data.note}, D_var = first {args.dvar} training images\n")
    print("| layer | filters | Spearman(importance, mean activation) | Spearman(importance, share of zeros) |")
    print("|---|---|---|---|")
    for conv, out in outs.items():
        imp = ocnna.filter_importance(out, workers=1)
        mean_act = out.mean((0, 2, 3)).numpy()
        zeros = (out == 0).float().mean((0, 2, 3)).numpy()
        print(f"| {conv} | {out.shape[1]} | {spearmanr(imp, mean_act).statistic:+.2f} | "
              f"{spearmanr(imp, zeros).statistic:+.2f} |")


if __name__ == "__main__":
    main()
