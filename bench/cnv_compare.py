"""Issue 15's comparison: FINN's uniform CNV designs vs bitswarm's searched ones, same QAT recipe and seeds.

Reads ``bench/results/cnv-uniform/`` (``results.json`` from ``bench/cnv_uniform.py``, the designs' FINN
estimates ``estimates-3000fps.json``) and each searched design's FINN re-check
(``bench/results/cnv-search-<budget>/result.json``); prints the markdown table of BENCHMARKS.md with a
one-sided Mann-Whitney U test per (searched, uniform) pair, and draws accuracy against LUT and BRAM18
(``bench/results/cnv-compare.png``), the published cnv-w1a1 / cnv-w2a2 marked as references.

    .venv/bin/python bench/cnv_compare.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402

RES = Path(__file__).parent / "results"
UNI = RES / "cnv-uniform"
#: published finn-examples figures on the original CIFAR-10 (hundreds of GPU epochs from scratch): test accuracy
PUBLISHED = {"cnv-w1a1": 0.842, "cnv-w2a2": 0.890}


def designs() -> dict[str, dict]:
    runs = json.loads((UNI / "results.json").read_text())
    est = json.loads((UNI / "estimates-3000fps.json").read_text())
    out: dict[str, dict] = {}
    for r in runs.values():
        d = out.setdefault(r["design"], {"bits": r["bits"], "test": [], "seeds": []})
        d["test"].append(r["test_acc"])
        d["seeds"].append(r["seed"])
    for name, d in out.items():
        if name in est:
            d["finn"], d["finn_source"] = est[name], "FINN estimate"
        else:  # a searched design: the FINN re-check of its search (``searched-<budget>``)
            rc = json.loads((RES / f"cnv-search-{name.removeprefix('searched-')}" / "result.json").read_text())
            d["finn"], d["finn_source"] = rc["recheck"]["values"], "FINN re-check of the winner"
            d["budget_of"] = name.removeprefix("searched-")
    return out


def table(ds: dict[str, dict]) -> str:
    lines = ["| design | per-layer bits | seeds | test acc mean ± sd | LUT | BRAM18 | DSP | FPS |",
             "|---|---|---|---|---|---|---|---|"]
    for name, d in ds.items():
        f, t = d["finn"], d["test"]
        sd = statistics.stdev(t) if len(t) > 1 else float("nan")
        lines.append(f"| {name} | `{d['bits']}` | {len(t)} | {100 * statistics.fmean(t):.2f} ± {100 * sd:.2f} % | "
                     f"{f['lut']:,.0f} | {f['bram18']:.0f} | {f['dsp']:.0f} | {f['throughput_fps']:,.0f} |")
    lines += ["", "| searched | vs uniform | searched within its LUT and BRAM18 | Δ mean test acc | "
              "Mann-Whitney U (one-sided, searched > uniform) |", "|---|---|---|---|---|"]
    for name, d in ds.items():
        if "budget_of" not in d:
            continue
        for uname in ("w1a1", "w1a2", "w2a2"):  # every uniform design whose resources it fits, and its own budget
            u = ds.get(uname)
            if u is None:
                continue
            within = d["finn"]["lut"] <= u["finn"]["lut"] and d["finn"]["bram18"] <= u["finn"]["bram18"]
            if not within and uname != d["budget_of"]:
                continue
            p = mannwhitneyu(d["test"], u["test"], alternative="greater").pvalue
            delta = 100 * (statistics.fmean(d["test"]) - statistics.fmean(u["test"]))
            lines.append(f"| {name} | {uname} | {'yes' if within else 'no'} | {delta:+.2f} points | "
                         f"p = {p:.3f} (n = {len(d['test'])} vs {len(u['test'])}) |")
    return "\n".join(lines)


def plot(ds: dict[str, dict], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, q, limit in zip(axes, ("lut", "bram18"), (37240, 224), strict=True):
        for name, d in ds.items():
            mine = "budget_of" in d
            t = d["test"]
            ax.errorbar(d["finn"][q], statistics.fmean(t), yerr=statistics.stdev(t) if len(t) > 1 else 0,
                        fmt="*" if mine else "o", ms=12 if mine else 7, capsize=3,
                        color="tab:green" if mine else "tab:blue")
            ax.annotate(name, (d["finn"][q], statistics.fmean(t)), fontsize=7, xytext=(5, -10),
                        textcoords="offset points")
        for ref, acc in PUBLISHED.items():
            ax.axhline(acc, color="grey", ls="--", lw=0.8)
            ax.text(ax.get_xlim()[0], acc, f" published {ref} {100 * acc:.1f} % (original CIFAR-10, GPU budget)",
                    fontsize=6, va="bottom", color="grey")
        ax.axvline(limit, color="tab:red", ls=":", lw=1)
        ax.text(limit, ax.get_ylim()[0], " pynq-z2 FINN limit", fontsize=6, color="tab:red", rotation=90,
                va="bottom")
        ax.set_xlabel(f"{q.upper()} (FINN, 3,000 FPS at 100 MHz)")
        ax.set_ylabel("test accuracy (mean ± sd over seeds)")
    fig.suptitle("CNV on CIFAR-10 (JPEG-derived copy), QAT 2 epochs from the shipped float model, 2 CPU cores",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    ds = designs()
    print(table(ds))
    plot(ds, RES / "cnv-compare.png")
    print(f"\nplot: {RES / 'cnv-compare.png'}")


if __name__ == "__main__":
    main()
