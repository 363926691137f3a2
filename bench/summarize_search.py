"""Tables for BENCHMARKS.md from `bitswarm compare` output directories (bench/bench_search.sh).

Per searcher: best feasible validation accuracy (the search's fitness), held-out test accuracy of
the winner after the final fine-tune, ΔAccuracy (Eq. 8: quantized test - float test), compression
ratio (Eq. 9) and average operation bit-width (Eq. 11) of the winners, evaluations actually
trained, wall time; Mann-Whitney U p-values against BBPSO-Quantizer on both accuracies and
Friedman mean ranks (scipy), as the paper's Table 10.

    .venv/bin/python bench/summarize_search.py runs/bench-search-avg3 bbpso-q,bbpso,ga,random [plot.png]
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

from bitswarm.search.stats import summarize


def load_runs(out: Path, algos: list[str]) -> dict[str, list[dict]]:
    """``OUT/<algo>-s<seed>/result.json`` of every finished run, seeds in order."""
    runs = {}
    for algo in algos:
        dirs = sorted(out.glob(f"{algo}-s*/result.json"), key=lambda p: int(p.parent.name.rsplit("-s", 1)[1]))
        runs[algo] = [r for r in (json.loads(p.read_text()) for p in dirs) if "final" in r]
    n = min(len(rs) for rs in runs.values())  # the same seeds for every searcher
    return {a: rs[:n] for a, rs in runs.items()}


def table(out: Path, algos: list[str]) -> str:
    runs = load_runs(out, algos)
    ref = next(iter(runs))
    feasible = {a: [r["best"]["violation"] == 0 for r in rs] for a, rs in runs.items()}
    val = {a: [r["best"]["fitness"] if ok else 0.0 for r, ok in zip(rs, feasible[a], strict=True)]
           for a, rs in runs.items()}
    test = {a: [r["final"]["test_acc"] if ok else 0.0 for r, ok in zip(rs, feasible[a], strict=True)]
            for a, rs in runs.items()}
    sv, st = ({r["algo"]: r for r in summarize(d, ref)} for d in (val, test))
    head = ("| searcher | feasible | val acc (search) | p | test acc after final FT | p | ΔAcc (Eq. 8) | "
            "compression (Eq. 9) | avg op bits (Eq. 11) | distinct configs | Friedman rank (test) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for a, rs in runs.items():
        d_acc = [r["final"]["test_acc"] - r["final"]["fp_test_acc"] for r in rs]
        cr = [r["best"]["cost"]["compression_ratio"] for r in rs]
        ab = [r["best"]["cost"]["avg_bits"] for r in rs]
        pv, pt = sv[a].get(f"p_vs_{ref}", float("nan")), st[a].get(f"p_vs_{ref}", float("nan"))
        rows.append(f"| {a} | {sum(feasible[a])}/{len(rs)} | {np.mean(val[a]):.4f} ± {np.std(val[a], ddof=1):.4f} | "
                    f"{_p(pv)} | {np.mean(test[a]):.4f} ± {np.std(test[a], ddof=1):.4f} | {_p(pt)} | "
                    f"{np.mean(d_acc):+.2%} | {np.mean(cr):.2f}x | {np.mean(ab):.2f} | "
                    f"{np.mean([r['unique_positions'] for r in rs]):.0f} | {st[a]['friedman_rank']:.2f} |")
    fr_v, fr_t = next(iter(sv.values()))["friedman_p"], next(iter(st.values()))["friedman_p"]
    return head + "\n".join(rows) + f"\n\nFriedman p: validation {fr_v:.3g}, test {fr_t:.3g}.\n"


def _journal(run: Path) -> list[tuple]:
    """(bits, fitness, violation, seconds, trained) of every evaluation of a run, in order."""
    import sqlite3

    db = sqlite3.connect(f"file:{run / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT bits, fitness, violation, seconds, trained FROM evals ORDER BY idx").fetchall()
    finally:
        db.close()


def training_seconds(out: Path) -> dict[str, float]:
    """Seconds each configuration's training took, over every run of the comparison: runs share a fitness
    memo, so a configuration another run already trained comes back in milliseconds; charging it the
    seconds of its first training makes the wall-clock curves independent of the order the runs ran in."""
    took: dict[str, float] = {}
    for j in out.glob("*-s*/journal.sqlite"):
        for bits, _, _, sec, trained in _journal(j.parent):
            if trained:
                took[bits] = max(took.get(bits, 0.0), sec)
    return took


def _series(out: Path, algo: str, x_key: str, took: dict[str, float]) -> list[tuple[list[float], list[float]]]:
    """Per seed, (x, best feasible validation accuracy so far; NaN before the first feasible one); x = trained
    evaluations, or wall-clock seconds: the start prior plus every evaluation's seconds from the journal, a
    fitness-memo hit charged its first training's (the run's own loop clock where no journal was kept)."""
    series = []
    for h in sorted(out.glob(f"{algo}-s*/history.json"), key=lambda p: int(p.parent.name.rsplit("-s", 1)[1])):
        start = json.loads((h.parent / "result.json").read_text()).get("start_s", 0.0) if x_key == "wall_s" else 0
        if x_key == "wall_s" and (h.parent / "journal.sqlite").exists():
            xs, best, top, clock = [], [], np.nan, start
            for bits, fit, vio, sec, trained in _journal(h.parent):
                if trained and vio == 0:
                    top = fit if np.isnan(top) else max(top, fit)
                clock += max(sec, took.get(bits, 0.0)) if trained else sec
                xs.append(clock)
                best.append(top)
        else:
            rounds = json.loads(h.read_text())
            xs = [r[x_key] + start for r in rounds]
            best = [r["best_fitness"] if r["best_violation"] == 0 else np.nan for r in rounds]
        series.append((xs, best))
    return series


def _on_grid(series, grid: np.ndarray) -> np.ndarray:
    return np.array([[best[i - 1] if (i := np.searchsorted(xs, g, side="right")) > 0 else np.nan for g in grid]
                     for xs, best in series], float)


def convergence_plot(out: Path, algos: list[str], png: Path, title: str) -> None:
    """Mean over seeds of the best feasible validation accuracy, by trained evaluations and by wall-clock."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    took = training_seconds(out)  # every journal read once, for all searchers
    for ax, key, label in ((axes[0], "evaluations", "trained evaluations"),
                           (axes[1], "wall_s", "wall-clock of the run (s, 1 thread; memo hits charged)")):
        series = {algo: _series(out, algo, key, took) for algo in algos}
        top = max(xs[-1] for runs in series.values() for xs, _ in runs)
        grid = np.arange(0, top + 1) if key == "evaluations" else np.linspace(0, top, 400)
        for algo in algos:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # no seed feasible yet at the first evaluations
                ax.plot(grid, np.nanmean(_on_grid(series[algo], grid), axis=0), label=algo)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("best feasible val. accuracy\n(mean over seeds feasible so far)")
    fig.suptitle(title, fontsize=9)
    if "cifar" not in out.name:
        axes[0].set_ylim(0.95, 0.98)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def evaluations_to_reach(out: Path, algos: list[str], reference: str = "random") -> str:
    """Per searcher, the trained evaluations each seed needs before its best feasible validation accuracy
    reaches the median final best of ``reference`` (issue 16's yardstick); '>N' where it never does."""
    def curve(h: Path):
        return [(r["evaluations"], r["best_fitness"] if r["best_violation"] == 0 else -np.inf)
                for r in json.loads(h.read_text())]

    finals = [curve(h)[-1][1] for h in sorted(out.glob(f"{reference}-s*/history.json"))]
    target = float(np.median(finals))
    rows = [f"Trained evaluations to reach {reference}'s median final best ({target:.4f}):", "",
            "| algo | median | per seed | reached |", "|---|---|---|---|"]
    for algo in algos:
        need = []
        for h in sorted(out.glob(f"{algo}-s*/history.json"), key=lambda p: int(p.parent.name.rsplit("-s", 1)[1])):
            c = curve(h)
            need.append(next((ev for ev, best in c if best >= target), np.inf))
        shown = [str(int(n)) if np.isfinite(n) else f">{curve(h)[-1][0]}" for n in need]
        med = np.median(need)
        rows.append(f"| {algo} | {int(med) if np.isfinite(med) else 'not reached'} | {' '.join(shown)} | "
                    f"{sum(np.isfinite(need))}/{len(need)} |")
    return "\n".join(rows)


def fitness_recipe(out: Path) -> str:
    """The search fitness of a comparison, from its first run's signature, e.g. '2-epoch QAT on 8,000 images'."""
    sig = json.loads(next(out.glob("*-s*/result.json")).read_text())["signature"]
    r, val = json.loads(sig["eval_recipe"]), sig.get("val_samples")
    n = f"{r['max_train']:,} images" if r.get("max_train") else "all training images"
    return f"{r['epochs']}-epoch QAT on {n}, {f'{val:,}' if val else 'all'} validation images"


def _p(p: float) -> str:
    return "–" if np.isnan(p) else f"{p:.3g}"


if __name__ == "__main__":
    out, algos = Path(sys.argv[1]), sys.argv[2].split(",")
    if len(sys.argv) > 3:  # PNG of the convergence curves
        data = "small CNN / CIFAR-10 (JPEG re-encoded copy)" if "cifar" in out.name else "TFC / MNIST"
        seeds = min(len(r) for r in load_runs(out, algos).values())
        convergence_plot(out, algos, Path(sys.argv[3]), f"{data}, {seeds} seeds, fitness: {fitness_recipe(out)}")
    print(f"### {out} ({min(len(r) for r in load_runs(out, algos).values())} seeds)\n\n{table(out, algos)}")
    if "random" in algos:
        print(f"\n{evaluations_to_reach(out, algos)}")
