"""Statistics for comparing searchers over seeds (the paper's Table 10): mean/std, Mann-Whitney U
of each algorithm against the reference, and Friedman mean ranks (scipy)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def summarize(results: dict[str, list[float]], reference: str) -> list[dict]:
    """``results``: algorithm -> final fitness per seed (same seeds, same order)."""
    algos = list(results)
    table = np.array([results[a] for a in algos])  # algos x seeds
    ranks = np.mean([stats.rankdata(-table[:, j]) for j in range(table.shape[1])], axis=0)
    friedman_p = (stats.friedmanchisquare(*table).pvalue if len(algos) >= 3 and table.shape[1] >= 2
                  and np.ptp(table) > 0 else float("nan"))
    rows = []
    for i, a in enumerate(algos):
        vals = table[i]
        p = float("nan")
        if a != reference and np.ptp(np.concatenate([vals, results[reference]])) > 0:
            p = float(stats.mannwhitneyu(results[reference], vals, alternative="two-sided").pvalue)
        rows.append({"algo": a, "mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                     "best": float(vals.max()), "p_vs_" + reference: p, "friedman_rank": float(ranks[i]),
                     "friedman_p": float(friedman_p)})
    return rows


def markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    out = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    for r in rows:
        out += "| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()) + " |\n"
    return out
