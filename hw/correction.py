"""Correcting FINN's estimates (and so the surrogate) towards measured, post-synthesis figures.

A *measured file* (JSON or YAML) lists configurations with what hardware really used::

    model: cnv
    part: xc7z020clg400-1
    source: where the figures come from
    measurements:
      - bits: w1a1                      # wXaY, or {layers: {name: {w, a}}}
        overrides: {input_quant: {a: 8}}
        folding_file: cnv-w1a1_folding_config.json   # relative to this file; else target-fps folding
        measured: {lut: 21135, ff: 31517, bram18: 205, dsp: 0}
        # or: post_synth_resources: post_synth_resources.json   (FINN's report, "(top)" row used)

For each entry the real FINN estimate is taken with the same folding, and per quantity a
correction ``measured ≈ scale · estimate + offset`` is fitted (a ratio from one point, least
squares from two or more; quantities FINN estimates as 0 are not corrected). The surrogate
applies it to its predictions. Before/after errors are reported; with fewer than three points
the "after" error is in-sample (the fit passes through the points) and says nothing about other
configurations, which the report states.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Cost, LayerCost
from bitswarm.models import BitConfig, ZooEntry

CORRECTED = ("lut", "bram18", "dsp")


def read_post_synth(path: Path, source: str) -> dict[str, float]:
    """Totals from FINN's ``post_synth_resources.json`` (its ``(top)`` row, else the sum of the rows)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(source, "post_synth_resources", f"cannot read {path} ({e})") from e
    top = next((v for k, v in data.items() if "top" in k.lower()), None)
    rows = [top] if top is not None else list(data.values())
    get = lambda *keys: float(sum(float(r.get(k, 0) or 0) for r in rows for k in keys))  # noqa: E731
    return {"lut": get("LUT"), "ff": get("FF"), "bram18": get("BRAM_18K") + 2 * get("BRAM_36K"),
            "dsp": get("DSP48E", "DSP48", "DSP"), "uram": get("URAM")}


def read_measured(path: str | Path, entry: ZooEntry, candidates) -> list[dict]:
    path = Path(path)
    src = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(src, "-", f"cannot read measured figures ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("measurements"), list) or not data["measurements"]:
        raise ConfigError(src, "measurements", "missing or empty", "a list of {bits, measured | post_synth_resources}")
    if data.get("model", entry.name) != entry.name:
        raise ConfigError(src, "model", f"figures are for {data['model']!r}, not {entry.name!r}", entry.name)
    out = []
    for i, m in enumerate(data["measurements"]):
        where = f"measurements[{i}]"
        bits = _bits(m.get("bits"), m.get("overrides") or {}, entry, f"{src}: {where}")
        if "post_synth_resources" in m:
            measured = read_post_synth(path.parent / m["post_synth_resources"], src)
        elif isinstance(m.get("measured"), dict):
            measured = {str(k): float(v) for k, v in m["measured"].items()}
        else:
            raise ConfigError(src, f"{where}.measured", "missing", "{lut, bram18, dsp, ...} or post_synth_resources")
        folding = m.get("folding_file")
        if folding and not (path.parent / folding).exists():
            raise ConfigError(src, f"{where}.folding_file", f"{path.parent / folding} does not exist")
        out.append({"bits": bits, "measured": measured, "name": str(m.get("name", f"#{i}")),
                    "folding_file": str(path.parent / folding) if folding else None})
    return out


def _bits(spec, overrides: dict, entry: ZooEntry, source: str) -> BitConfig:
    import re

    if isinstance(spec, dict):
        return BitConfig.from_dict(spec, source).validate(entry.specs, source=source)
    m = re.fullmatch(r"w(\d+)a(\d+)", str(spec).lower())
    if not m:
        raise ConfigError(source, "bits", f"cannot read {spec!r}", "wXaY or {layers: {name: {w, a}}}")
    ov = {n: (b.get("w", int(m.group(1))), b.get("a", int(m.group(2)))) for n, b in overrides.items()}
    return BitConfig.uniform(entry.specs, int(m.group(1)), int(m.group(2)), **ov).validate(entry.specs, source=source)


def finn_estimate_folded(entry: ZooEntry, bits: BitConfig, board, cache_dir: Path, folding_file: str) -> Cost:
    """FINN's estimate with a given folding config (cached like :func:`finn_estimate`)."""
    from bitswarm.hw.finn_estimate import finn_estimate_onnx
    from bitswarm.models.export import export_qonnx

    digest = hashlib.sha256(Path(folding_file).read_bytes()).hexdigest()[:16]
    key = hashlib.sha256(json.dumps([entry.name, bits.key(), board.fpga.part, board.fpga.clock_mhz,
                                     f"folding:{digest}"]).encode()).hexdigest()[:24]
    cache = Path(cache_dir) / "finn" / f"{key}.json"
    if cache.exists():
        d = json.loads(cache.read_text())
        return Cost(d["source"], d["values"], tuple(LayerCost(n, v) for n, v in d["per_layer"]), d["meta"])
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bitswarm-corr-") as tmp:
        onnx = export_qonnx(entry.build(bits).eval(), entry.input_shape, Path(tmp) / "m.onnx", verify=False).path
        cost = finn_estimate_onnx(onnx, board, cache_dir, folding_file=folding_file, entry=entry)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"source": cost.source, "values": dict(cost.values), "meta": cost.meta,
                                 "per_layer": [[lc.name, dict(lc.values)] for lc in cost.per_layer]}, default=str))
    return cost


def fit_correction(estimates: list[float], measured: list[float]) -> dict | None:
    est, meas = np.asarray(estimates, dtype=float), np.asarray(measured, dtype=float)
    if not (est > 0).any():
        return None  # FINN estimates none of it: nothing to scale
    if len(est) == 1 or np.ptp(est) == 0:
        return {"scale": float(meas.sum() / est.sum()), "offset": 0.0, "points": len(est), "kind": "ratio"}
    a, b = np.polyfit(est, meas, 1)
    return {"scale": float(a), "offset": float(b), "points": len(est), "kind": "linear"}


def _rel(value: float, measured: float) -> str:
    return f"{(value - measured) / measured * 100:+.1f}%" if measured else f"{value - measured:+g}"


def correction_from(rows: list[dict]) -> tuple[dict, list[str]]:
    """Per-quantity correction and a before/after report from ``[{name, estimate, measured}]``."""
    corr, lines = {}, []
    for q in CORRECTED:
        pts = [(r["estimate"][q], r["measured"][q]) for r in rows if q in r["measured"]]
        if not pts:
            continue
        c = fit_correction(*zip(*pts, strict=True))
        for r in rows:
            if q not in r["measured"]:
                continue
            est, meas = r["estimate"][q], r["measured"][q]
            after = est * c["scale"] + c["offset"] if c else est
            lines.append(f"  {r['name']:10s} {q:7s} measured {meas:9.0f}  FINN estimate {est:9.0f} "
                         f"({_rel(est, meas)})  corrected {after:9.0f} ({_rel(after, meas)})")
        if c:
            corr[q] = c
    if rows and len(rows) < 3:
        lines.append(f"  ({len(rows)} measured point(s): the corrected error is in-sample, not a validation)")
    return corr, lines


def apply_measured(sur, entry: ZooEntry, board, measured_path: str, cache_dir: Path):
    """The surrogate with a correction fitted to ``measured_path``, and the report lines."""
    from bitswarm.hw.finn_estimate import finn_estimate

    rows = []
    for m in read_measured(measured_path, entry, sur.candidates):
        est = (finn_estimate_folded(entry, m["bits"], board, cache_dir, m["folding_file"]) if m["folding_file"]
               else finn_estimate(entry, m["bits"], board, cache_dir, int(sur.policy.split(":")[1])))
        rows.append({"name": m["name"], "estimate": dict(est.values), "measured": m["measured"]})
    corr, lines = correction_from(rows)
    info = {q: {**c, "source": str(measured_path)} for q, c in corr.items()}
    return replace(sur, correction=info), [f"correction to measured figures ({measured_path}):", *lines]
