"""The hardware report: self-contained HTML (inline SVG plots), Markdown and JSON.

Input is ``summary.json`` in a run directory (written by the deploy flow; see
``flows/deploy.py`` for its fields); every section is optional, so a report can be made of a
partial run. ``bitswarm report RUN_DIR`` writes ``report.html``, ``report.md`` and
``report.json`` next to it.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bitswarm.atomic import write_text  # noqa: E402

RESOURCES = ("lut", "ff", "bram18", "dsp", "uram")
COLORS = {"w": "#3b6ea5", "a": "#e07b39", "ok": "#3a9d5d", "bad": "#c8453c", "grey": "#9aa5b1"}


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def plot_bits(bits: dict) -> str:
    names = list(bits)
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(names)), 2.8))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [bits[n].get("w") or 0 for n in names], 0.4, label="weight bits", color=COLORS["w"])
    ax.bar([i + 0.2 for i in x], [bits[n].get("a") or 0 for n in names], 0.4, label="activation bits",
           color=COLORS["a"])
    ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("bits")
    ax.set_title("Per-layer bit-widths")
    ax.legend(fontsize=8)
    return _svg(fig)


def plot_convergence(history: list[dict]) -> str:
    fig, ax = plt.subplots(figsize=(5, 2.8))
    it = [h["iteration"] for h in history]
    fit = [h["best_fitness"] for h in history]
    ax.plot(it, fit, color=COLORS["w"], label="global best (Deb's rule)")
    feas = [h.get("best_violation", 0) <= 0 for h in history]
    pick = lambda want: ([i for i, f in zip(it, feas, strict=True) if f == want],
                         [v for v, f in zip(fit, feas, strict=True) if f == want])
    ax.scatter(*pick(True), color=COLORS["w"], zorder=3, label="feasible")
    ax.scatter(*pick(False), facecolors="none", edgecolors=COLORS["bad"], zorder=3,
               label="infeasible (violates the limit)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Search convergence")
    ax2 = ax.twinx()
    ax2.plot(it, [h.get("evaluations", 0) for h in history], ls="--", color=COLORS["grey"], label="evaluations")
    ax2.set_ylabel("evaluations")
    return _svg(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated for (minimise cost, maximise accuracy), sorted by cost."""
    front, best = [], float("-inf")
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((cost, acc))
            best = acc
    return front


def plot_pareto(evaluations: list[dict], quantity: str, limit: float | None) -> str:
    pts = [(e["cost"][quantity], e["fitness"]) for e in evaluations if quantity in e.get("cost", {})]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    feas = [p for p, e in zip(pts, evaluations, strict=False) if e.get("violation", 0) == 0]
    infeas = [p for p, e in zip(pts, evaluations, strict=False) if e.get("violation", 0) > 0]
    if infeas:
        ax.scatter(*zip(*infeas, strict=True), s=14, color=COLORS["bad"], alpha=0.5, label="infeasible")
    if feas:
        ax.scatter(*zip(*feas, strict=True), s=14, color=COLORS["ok"], alpha=0.7, label="feasible")
    front = pareto_front(feas)
    if front:
        ax.step(*zip(*front, strict=True), where="post", color="black", lw=1.2, label="Pareto front")
    if limit is not None:
        ax.axvline(limit, color=COLORS["bad"], ls=":", label=f"limit {limit:g}")
    ax.set_xlabel(quantity)
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Accuracy vs {quantity} ({len(pts)} configurations; front of feasible ones)")
    ax.legend(fontsize=7)
    return _svg(fig)


def plot_designs(rows: list[dict], limits: dict[str, float]) -> str:
    """Test accuracy against FINN's LUT and BRAM18 of every design that has both (error bars: sd over seeds);
    ``""`` when none has."""
    pts = [r for r in rows if r.get("test acc") is not None and r.get("lut") is not None]
    if not pts:
        return ""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, q in zip(axes, ("lut", "bram18"), strict=True):
        for r in pts:
            mine = r["design"].startswith("searched")
            ax.errorbar(r[q], r["test acc"], yerr=r.get("test acc sd") or 0, fmt="*" if mine else "o",
                        ms=11 if mine else 6, color=COLORS["ok"] if mine else COLORS["w"], capsize=3)
            ax.annotate(r["design"].split(" ")[0], (r[q], r["test acc"]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
        if q in limits:
            ax.axvline(limits[q], color=COLORS["bad"], ls=":", label=f"FINN limit {limits[q]:,.0f}")
            ax.legend(fontsize=7)
        ax.set_xlabel(f"{q.upper()} (FINN)")
        ax.set_ylabel("test accuracy")
    fig.suptitle("Searched design (star) beside FINN-style uniform designs", fontsize=9)
    fig.tight_layout()
    return _svg(fig)


def plot_layers(per_layer: list[dict]) -> str:
    names = [p["name"] for p in per_layer]
    cycles = [p.get("cycles", 0) for p in per_layer]
    bott = max(range(len(cycles)), key=cycles.__getitem__) if cycles else -1
    fig, axes = plt.subplots(1, 3, figsize=(max(9, 0.6 * len(names) * 3), 3))
    for ax, key in zip(axes, ("lut", "bram18", "cycles"), strict=True):
        vals = [p.get(key, 0) for p in per_layer]
        colors = [COLORS["bad"] if i == bott and key == "cycles" else COLORS["w"] for i in range(len(vals))]
        ax.bar(range(len(vals)), vals, color=colors)
        ax.set_xticks(range(len(vals)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(key.upper() if key != "cycles" else "cycles (bottleneck in red)", fontsize=9)
    fig.tight_layout()
    return _svg(fig)


def plot_utilisation(total: dict, capacity: dict, limits: dict) -> str:
    res = [r for r in RESOURCES if capacity.get(r) and r in total]  # FINN estimates no FF: not drawn
    used = [100 * total.get(r, 0) / capacity[r] for r in res]
    fig, ax = plt.subplots(figsize=(5, 2.8))
    colors = [COLORS["bad"] if u > 100 * limits.get(r, 1) else COLORS["ok"] for u, r in zip(used, res, strict=True)]
    ax.bar(range(len(res)), used, color=colors)
    for i, r in enumerate(res):
        ax.hlines(100 * limits.get(r, 1), i - 0.4, i + 0.4, color="black", ls="--")
        ax.text(i, used[i] + 1, f"{used[i]:.0f}%", ha="center", fontsize=8)
    ax.set_xticks(range(len(res)), [r.upper() for r in res])
    ax.set_ylabel("% of device")
    ax.set_title("Utilisation vs capacity (dashed: FINN limit)")
    return _svg(fig)


def _table(rows: list[dict], cols: list[str]) -> tuple[str, str]:
    fmt = lambda v: (f"{v:,.0f}" if isinstance(v, float) and abs(v) >= 1000 else f"{v:.4g}" if isinstance(v, float)
                     else "" if v is None else str(v))
    h = "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
    h += "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    md = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    md += "".join("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |\n" for r in rows)
    return h + "</table>", md



def _runner_cell(r: dict | None) -> str:
    if not r:
        return "-"
    diff = r.get("max_abs_diff_vs_host")
    check = f"{r['checked']}, max diff vs host {diff:.1g}" if diff is not None else r.get("checked", "")
    glibc = f", needs glibc >= {r['min_glibc']}" if r.get("min_glibc") else ""
    return f"{r['runner']} ({check}{glibc}; README next to it)"

def verification_section(v: dict) -> tuple[str, str]:
    """Levels checked, inputs, largest difference, and the three accuracies on the same images."""
    rows = [{"level": lc["level"], "FINN step": lc["step"], "inputs": lc["n"], "max |diff|": lc["max_abs_diff"],
             "exact integers": "yes" if lc["integer"] else "no (float)", "top-1 agreement": lc["top1_agree"]}
            for lc in v["levels"]]
    h, md = _table(rows, list(rows[0]))
    acc = v.get("accuracy") or {}
    names = (("pytorch", "PyTorch"), ("qonnx", "QONNX"), ("finn_hw", "FINN hardware-layer graph"))
    line = ", ".join(f"{label} {acc[k]:.2%}" for k, label in names if k in acc)
    note = (f"All {len(rows)} levels match the QONNX model on {v['n_inputs']} test images "
            f"(FINN's Python execution, {v['seconds']:.1f} s). Accuracy on them: {line or 'no labels'}.")
    return f"<p>{html.escape(note)}</p>" + h, note + "\n\n" + md


def build_sections(s: dict) -> list[tuple[str, str, str]]:
    """``[(title, html, markdown)]`` for every part of the summary that is present."""
    out = []
    acc = s.get("accuracy", {})
    head = [{"model": s.get("model"), "board": s.get("board", {}).get("name"), "dataset": s.get("dataset_note"),
             "float test acc": acc.get("fp_test"), "quantized test acc": acc.get("test"),
             "quantized val acc": acc.get("val")}]
    out.append(("Summary", *_table(head, list(head[0]))))
    if s.get("bits"):
        rows = [{"layer": n, "w": b.get("w"), "a": b.get("a")} for n, b in s["bits"].items()]
        h, md = _table(rows, ["layer", "w", "a"])
        out.append(("Per-layer bit-widths", plot_bits(s["bits"]) + h, md))
    srch = s.get("search") or {}
    if srch.get("history"):
        n_eval = len(srch.get("evaluations", []))
        out.append(("Search convergence", plot_convergence(srch["history"]),
                    f"{srch.get('algo')} under {srch.get('constraint')}: {n_eval} evaluations\n"))
    if srch.get("evaluations") and srch.get("quantity"):
        out.append(("Accuracy vs cost, every evaluated configuration",
                    plot_pareto(srch["evaluations"], srch["quantity"], srch.get("limit")),
                    f"{len(srch['evaluations'])} configurations; Pareto front drawn in the HTML report.\n"))
    finn = s.get("finn") or {}
    if finn.get("per_layer"):
        cols = ["name"] + [k for k in ("lut", "ff", "bram18", "dsp", "cycles") if k in finn["per_layer"][0]]
        h, md = _table(finn["per_layer"], cols)
        out.append(("Per-layer resources and cycles (FINN estimate)", plot_layers(finn["per_layer"]) + h, md))
    if finn.get("total") and s.get("board", {}).get("capacity"):
        b = s["board"]
        rows = [{"resource": r.upper(), "estimate": finn["total"].get(r), "capacity": b["capacity"].get(r),
                 "FINN limit": b["capacity"].get(r, 0) * b.get("limits", {}).get(r, 1)} for r in RESOURCES]
        h, md = _table(rows, ["resource", "estimate", "capacity", "FINN limit"])
        out.append(("Utilisation", plot_utilisation(finn["total"], b["capacity"], b.get("limits", {})) + h, md))
    if finn.get("missing_tool") or finn.get("steps"):
        note = f"FINN flow stopped: {finn['missing_tool']}" if finn.get("missing_tool") else "FINN flow complete"
        out.append(("FINN flow", f"<p>{html.escape(note)}</p>", note + "\n"))
    if finn.get("verification"):
        out.append(("Verification: FINN's graphs against the QONNX model", *verification_section(finn["verification"])))
    elif finn.get("total"):
        note = "FINN's build was NOT verified against the QONNX model (deployed with --verify-samples 0)."
        out.append(("Verification: FINN's graphs against the QONNX model", f"<p>{note}</p>", note + "\n"))
    if s.get("tvm"):
        rows = [{"target": t.get("target"), "latency ms": t.get("latency_ms"), "binary": t.get("lib"),
                 "native runner (no Python on the board)": _runner_cell(t.get("native_runner"))} for t in s["tvm"]]
        out.append(("TVM", *_table(rows, ["target", "latency ms", "binary", "native runner (no Python on the board)"])))
    if s.get("uniform"):
        rows = s["uniform"]
        cols = list(dict.fromkeys(k for r in rows for k in r))
        h, md = _table(rows, cols)
        note = s.get("uniform_note") or ""
        b = s.get("board", {})
        limits = {q: b["capacity"][q] * b.get("limits", {}).get(q, 1) for q in ("lut", "bram18")
                  if b.get("capacity", {}).get(q)}
        out.append(("The searched design beside uniform designs",
                    plot_designs(rows, limits) + f"<p>{html.escape(note)}</p>" + h,
                    note + "\n\n" + md))
    if s.get("board_measurement"):
        out.append(("Measured on the board", *_table([s["board_measurement"]], list(s["board_measurement"]))))
    prov = s.get("provenance", {})
    if prov:
        rows = [{"item": k, "value": json.dumps(v) if isinstance(v, dict | list) else v} for k, v in prov.items()]
        out.append(("Provenance", *_table(rows, ["item", "value"])))
    return out


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1f2933}
h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #ccd;padding:2px 8px}
th{background:#eef2f7}svg{max-width:100%;height:auto}.note{color:#7b8794;font-size:.85em}"""


def render(summary: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.html, report.md and report.json into ``out_dir``."""
    sections = build_sections(summary)
    title = f"bitswarm hardware report: {summary.get('model')} on {summary.get('board', {}).get('name')}"
    note = html.escape(summary.get("dataset_note") or "")
    body = "".join(f"<section><h2>{html.escape(t)}</h2>{h}</section>" for t, h, _ in sections)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='note'>Data: {note}</p>"
            f"{body}</body></html>")
    md = f"# {title}\n\nData: {summary.get('dataset_note')}\n\n" + "".join(f"## {t}\n\n{m}\n" for t, _, m in sections)
    paths = {"html": out_dir / "report.html", "md": out_dir / "report.md", "json": out_dir / "report.json"}
    for kind, text in (("html", page), ("md", md), ("json", json.dumps(summary, indent=2, default=str))):
        write_text(paths[kind], text)
    return paths


def report_run(run_dir: str | Path) -> dict[str, Path]:
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        from bitswarm.errors import ConfigError

        raise ConfigError(str(run_dir), "summary.json", "missing: not a bitswarm run directory",
                          "a deploy/<board>/<run-id>/ directory")
    from bitswarm.errors import ConfigError
    from bitswarm.files import read_structured

    summary = read_structured(summary_path, max_bytes=64 << 20)
    if not isinstance(summary, dict):
        raise ConfigError(str(summary_path), "-", f"a {type(summary).__name__}, not a run summary",
                          "the summary.json a deploy writes")
    try:
        return render(summary, run_dir)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
        raise ConfigError(str(summary_path), "-", f"malformed run summary ({type(e).__name__}: {e})",
                          "the summary.json a deploy writes (re-run the deploy to rewrite it)") from e
