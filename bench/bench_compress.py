"""Compression-method benchmark (issue 6), CPU scale, accuracy on the held-out TEST split.

    nice .venv/bin/python bench/bench_compress.py --data-dir ../shared/datasets --part all --seeds 5
    nice .venv/bin/python bench/bench_compress.py --dataset cifar10 --part evo --seeds 5 ...

--dataset mnist runs TFC (evo, eda, cluster) and smallcnn (ocnna); --dataset cifar10 runs
cifar-smallcnn (3 conv, 16/32/64 filters, ~34k parameters) on the CIFAR-10 JPEG re-encoding for
every part, its float model trained for --fp-epochs (default 10 on CIFAR-10);
--ocnna-model cnv sweeps OCNNA's k on CNV instead (CIFAR-10; e.g. --fp-epochs 5).
Parts (each prints a markdown table and appends a JSON line to runs/bench_compress.jsonl):
  evo     evolutionary fine-tuning vs nearest rounding, PTQ w3a8 and w4a4 (fitness: val[:--evo-fitness])
  eda     EDA+CC vs EDA w/o CC vs GA vs local search, recovering w4a4 Q-Switch-30% / -50%
          (binary space of paper §4.1; fitness: train[:1000]; equal FE budgets)
  cluster PSO vs random vs k-means++ initialised k-means (+ pruning, fixed point), w4a8 / w3a8
  ocnna   OCNNA k sweep, vs random filters with the same per-layer counts
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bitswarm.env import read_environment
from bitswarm.search.compress import eda_cc, evo_finetune, nets, ocnna, pso_kmeans, qgrid, surgery
from bitswarm.train import Recipe, evaluate, train
from bitswarm.workflow import FP_RECIPES, get_data, scaled, train_float

OUT = Path("runs/bench_compress.jsonl")
# dataset -> (model of the evo/eda/cluster parts, model of the ocnna part, float epochs by default)
MODELS = {"mnist": ("tfc", "smallcnn", None), "cifar10": ("cifar-smallcnn", "cifar-smallcnn", 10)}
FP_EPOCHS: int | None = None  # set by main()


def ms(xs) -> str:
    xs = np.asarray(xs, dtype=float)
    return f"{xs.mean():.2%} ± {xs.std():.2%}"


def log(part: str, model: str, rows: list[dict]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as f:
        f.write(json.dumps({"part": part, "model": model, "time": time.strftime("%Y-%m-%d %H:%M"),
                            "rows": rows}) + "\n")


def float_model(name, data, env):
    e = nets.entry(name)
    fp = train_float(e, data, 0, scaled(FP_RECIPES[e.dataset], FP_EPOCHS), env, progress=False)
    print(f"float {name}: test {evaluate(fp.model, data.test):.2%} ({data.note})")
    return e, fp


def ptq_model(e, fp, data, w, a):
    return qgrid.ptq(e.build(e.uniform_bits(w, a)), fp.model.state_dict(), data.train)


def part_evo(name, data, env, seeds, gens, n_fit=2000):
    e, fp = float_model(name, data, env)
    rows = []
    print(f"\n### Evolutionary fine-tuning vs nearest rounding ({name}, {e.dataset})\n")
    print(f"| bits | nearest rounding test | evo test (mean ± sd) | seeds better | val[{n_fit}:] NR -> evo | evals "
          "| s/run |")
    print("|---|---|---|---|---|---|---|")
    held = data.val.__class__(data.val.x[n_fit:], data.val.y[n_fit:])
    for w, a in ((3, 8), (4, 4)):
        m = ptq_model(e, fp, data, w, a)
        t0, h0 = evaluate(m, data.test), evaluate(m, held)
        tests, helds, t = [], [], time.time()
        for s in range(seeds):
            m = ptq_model(e, fp, data, w, a)
            r = evo_finetune.evo_finetune(m, data.val, n_fit, evo_finetune.EvoParams(), gens, seed=s)
            tests.append(evaluate(m, data.test))
            helds.append(evaluate(m, held))
        dt = (time.time() - t) / seeds
        better = sum(x > t0 for x in tests)
        print(f"| w{w}a{a} | {t0:.2%} | {ms(tests)} | {better}/{seeds} | {h0:.2%} -> {ms(helds)} | "
              f"{r.evaluations} | {dt:.0f} |")
        rows.append({"bits": f"w{w}a{a}", "nr_test": t0, "evo_test": tests, "nr_heldval": h0, "evo_heldval": helds,
                     "evaluations": r.evaluations})
    log("evo", name, rows)


def part_eda(model, data, env, seeds, budget, gens, n_fit, switches=(0.3, 0.5)):
    e, fp = float_model(model, data, env)
    base = ptq_model(e, fp, data, 4, 4)
    grids = qgrid.extract_grids(base)
    codes = qgrid.flatten([g.codes for g in grids])
    lo, hi = qgrid.bounds(grids)
    fit = qgrid.Fitness(base, grids, data.train, n_fit)
    print(f"\n### EDA+CC vs EDA w/o CC vs GA vs LS ({model} w4a4 PTQ, {codes.size} weights, {budget} FEs, "
          f"fitness train[:{n_fit}])\n")
    print(f"nearest rounding (unperturbed): test {evaluate(base, data.test):.2%}\n")
    print("| start | algorithm | fitness start -> end | test start | test end (mean ± sd) | s/run |")
    print("|---|---|---|---|---|---|")
    p = eda_cc.EDAParams(gens=gens)
    algos = {
        "EDA+CC": lambda f, x0, s: eda_cc.run_eda_cc(f, x0, 2, p, budget, s, cc=True),
        "EDA w/o CC": lambda f, x0, s: eda_cc.run_eda_cc(f, x0, 2, p, budget, s, cc=False),
        "GA": lambda f, x0, s: eda_cc.run_ga(f, x0, 2, budget, s),
        "LS": lambda f, x0, s: eda_cc.run_local_search(f, x0, 2, budget, s),
    }
    rows, curves = [], {}
    for frac in switches:
        per = {k: ([], [], [], []) for k in algos}
        t_start = []
        for s in range(seeds):
            rng = np.random.default_rng(1000 + s)
            cand = eda_cc.binary_space(codes, lo, hi, rng=rng)
            x0 = eda_cc.switch(codes.size, frac, rng)
            f = lambda x, cand=cand: fit(eda_cc.decode(cand, x))
            qgrid.write_codes(base, grids, qgrid.unflatten(eda_cc.decode(cand, x0), grids))
            t_start.append(evaluate(base, data.test))
            for name, run in algos.items():
                t = time.time()
                r = run(f, x0, s)
                qgrid.write_codes(base, grids, qgrid.unflatten(eda_cc.decode(cand, r.best), grids))
                per[name][0].append((r.start_fitness, r.best_fitness))
                per[name][1].append(evaluate(base, data.test))
                per[name][2].append(time.time() - t)
                per[name][3].append([(0, r.start_fitness), *r.history])
        curves[frac] = {name: v[3] for name, v in per.items()}
        for name, (fits, tests, secs, _) in per.items():
            f0, f1 = np.mean([a for a, _ in fits]), np.mean([b for _, b in fits])
            print(f"| Q-Switch-{frac:.0%} | {name} | {f0:.2%} -> {f1:.2%} | {np.mean(t_start):.2%} | {ms(tests)} | "
                  f"{np.mean(secs):.0f} |")
            rows.append({"switch": frac, "algo": name, "fit": fits, "test": tests, "test_start": t_start,
                         "history": curves[frac][name]})
    log("eda", model, rows)
    tag = "-".join(f"{f * 100:.0f}" for f in switches)
    plot_curves(curves, budget, n_fit, Path(f"bench/results/eda_curves_{model}-{tag}.png"), f"{model} ({data.note})")


def step_curve(history: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Best-so-far fitness at each FE count of ``grid`` from (FEs, best fitness) records."""
    idx = np.clip(np.searchsorted(history[:, 0], grid, side="right") - 1, 0, None)
    return np.maximum.accumulate(history[idx, 1])


def plot_curves(curves: dict, budget: int, n_fit: int, dest: Path, title: str) -> None:
    """Paper Fig. 4 at this scale: best fitness vs fitness evaluations, mean over seeds (band: min-max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.arange(0, budget + 1)
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (frac, algos) in zip(axes[0], curves.items(), strict=True):
        for name, runs in algos.items():
            ys = np.array([step_curve(np.asarray(h, dtype=float), grid) for h in runs])
            ax.plot(grid, ys.mean(0), label=name)
            ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.15)
        ax.set(title=f"Q-Switch-{frac:.0%}", xlabel="fitness evaluations", ylabel=f"best accuracy on train[:{n_fit}]")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=120)
    plt.close(fig)
    print(f"\ncurves: {dest}")


def part_cluster(name, data, env, seeds):
    e, fp = float_model(name, data, env)
    print(f"\n### PSO vs random vs k-means++ initial centroids ({name} PTQ, 30% pruning, 2^b clusters/layer)\n")
    print("| bits | step | init | k-means MSE (sum over layers, mean ± sd) | test (mean ± sd) | worst seed | s/run |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for w in (4, 3):
        nr = evaluate(ptq_model(e, fp, data, w, 8), data.test)
        print(f"| w{w}a8 | - | nearest rounding, no pruning | - | {nr:.2%} | - | - |")
        for step in pso_kmeans.STEPS:
            for init in pso_kmeans.INITS:
                mse, tests, t = [], [], time.time()
                for s in range(seeds):
                    m = ptq_model(e, fp, data, w, 8)
                    res = pso_kmeans.cluster_model(m, 0.3, init, seed=s, step=step)
                    mse.append(sum(r.inertia for r in res.values()))
                    tests.append(evaluate(m, data.test))
                dt = (time.time() - t) / seeds
                print(f"| w{w}a8 | {step} | {init} | {np.mean(mse):.3g} ± {np.std(mse):.2g} | {ms(tests)} | "
                      f"{min(tests):.2%} | {dt:.1f} |")
                rows.append({"bits": w, "step": step, "init": init, "mse": mse, "test": tests})
    log("cluster", name, rows)


def part_ocnna(name, data, env, seeds, ks, dvar, ft_train):
    e, fp = float_model(name, data, env)
    state = fp.model.state_dict()
    base_test = evaluate(fp.model, data.test)
    print(f"\n### OCNNA k sweep ({name} float on {e.dataset}, test {base_test:.2%}; D_var {dvar} train images; "
          f"fine-tune 1 epoch on {ft_train} train images)\n")
    print("| k | RPR (Eq. 7) | filters kept | test, pruned | test, fine-tuned | random filters, fine-tuned |")
    print("|---|---|---|---|---|---|")
    rows = []
    recipe = Recipe(epochs=1, lr=5e-4, batch_size=128, max_train=ft_train)

    def fresh():
        m = e.build(e.uniform_bits(32, 32))
        m.load_state_dict(state)
        return m.eval()

    for k in ks:
        rpr, kept, pruned, tuned, rnd = [], None, [], [], []
        for s in range(seeds):
            sub = data.train.__class__(data.train.x[s * dvar:(s + 1) * dvar], data.train.y[s * dvar:(s + 1) * dvar])
            m = fresh()
            res = ocnna.ocnna(m, name, sub, k, workers=1)
            rpr.append(res.rpr)
            kept = {c: len(v) for c, v in res.keep.items()}
            pruned.append(evaluate(m, data.test))
            tuned.append(evaluate(train(m, data, recipe, s, progress=False), data.test))
            rng = np.random.default_rng(s)
            mr = fresh()
            surgery.apply_keep(mr, name, {c: sorted(rng.choice(len(res.importance[c]), n, replace=False)
                                                          .tolist()) for c, n in kept.items()})
            rnd.append(evaluate(train(mr, data, recipe, s, progress=False), data.test))
        print(f"| {k} | {np.mean(rpr):.1%} | {'/'.join(map(str, kept.values()))} | {ms(pruned)} | {ms(tuned)} | "
              f"{ms(rnd)} |")
        rows.append({"k": k, "rpr": rpr, "kept": kept, "pruned": pruned, "tuned": tuned, "random": rnd})
    log("ocnna", name, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("all", "evo", "eda", "cluster", "ocnna"), default="all")
    ap.add_argument("--dataset", choices=tuple(MODELS), default="mnist")
    ap.add_argument("--ocnna-model", help="model of the ocnna part (default: smallcnn / cifar-smallcnn; e.g. cnv)")
    ap.add_argument("--fp-epochs", type=int, help="float training epochs (default: 10 on cifar10, recipe on mnist)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--data-dir")
    ap.add_argument("--evo-gens", type=int, default=40)
    ap.add_argument("--evo-fitness", type=int, default=2000, help="fitness on val[:N]; val[N:] is the held check")
    ap.add_argument("--eda-budget", type=int, default=800)
    ap.add_argument("--eda-gens", type=int, default=10)
    ap.add_argument("--eda-fitness", type=int, default=1000)
    ap.add_argument("--switches", type=float, nargs="+", default=[0.3, 0.5], help="Q-Switch shares of the eda part")
    ap.add_argument("--ks", type=int, nargs="+", default=[10, 25, 40, 50, 60, 75])
    ap.add_argument("--dvar", type=int, default=500)
    ap.add_argument("--ft-train", type=int, default=10000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    env = read_environment()
    t0 = time.time()
    global FP_EPOCHS
    main_model, conv_model, FP_EPOCHS = MODELS[args.dataset]
    FP_EPOCHS = args.fp_epochs or FP_EPOCHS
    data = get_data(args.dataset, args.data_dir, env)
    print(f"data: {data.note}; {args.seeds} seeds; 1 thread")
    if args.part in ("all", "evo"):
        part_evo(main_model, data, env, args.seeds, args.evo_gens, args.evo_fitness)
    if args.part in ("all", "eda"):
        part_eda(main_model, data, env, args.seeds, args.eda_budget, args.eda_gens, args.eda_fitness, args.switches)
    if args.part in ("all", "cluster"):
        part_cluster(main_model, data, env, args.seeds)
    if args.part in ("all", "ocnna"):
        part_ocnna(args.ocnna_model or conv_model, data, env, args.seeds, args.ks, args.dvar, args.ft_train)
    print(f"\ntotal {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
