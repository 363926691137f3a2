"""The hardware report, rendered in headless Chromium to PNG and looked at."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bitswarm.errors import ConfigError
from bitswarm.flows.report import pareto_front, render, report_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _summary():
    rng = np.random.default_rng(0)
    evals = [{"fitness": float(0.8 + 0.15 * rng.random()), "cost": {"avg_bits": float(2 + 4 * rng.random())},
              "violation": float(max(0, rng.random() - 0.6))} for _ in range(40)]
    return {
        "model": "tfc", "dataset_note": "MNIST (original files)",
        "board": {"name": "pynq-z2", "capacity": {"lut": 53200, "ff": 106400, "bram18": 280, "dsp": 220, "uram": 0},
                  "limits": {"lut": 0.7, "ff": 0.5, "bram18": 0.8, "dsp": 0.8, "uram": 0.8}},
        "bits": {"input_quant": {"w": None, "a": 2}, "fc0": {"w": 3, "a": 2}, "fc1": {"w": 2, "a": 4},
                 "fc3": {"w": 8, "a": None}},
        "accuracy": {"fp_test": 0.98, "val": 0.96, "test": 0.965},
        "search": {"algo": "bbpso-q", "constraint": "avg_bits <= 3", "quantity": "avg_bits", "limit": 3.0,
                   "history": [{"iteration": i, "best_fitness": 0.9 + 0.01 * i, "evaluations": 6 * (i + 1)}
                               for i in range(5)], "evaluations": evals},
        "finn": {"total": {"lut": 30000, "ff": 20000, "bram18": 40, "dsp": 0, "uram": 0},
                 "per_layer": [{"name": "fc0", "lut": 20000, "bram18": 30, "cycles": 784},
                               {"name": "fc1", "lut": 10000, "bram18": 10, "cycles": 64}],
                 "missing_tool": "Vivado is not installed"},
        "tvm": [{"target": "armv7a", "latency_ms": 0.4, "lib": "tvm/model.so"}],
        "uniform": [{"bits": "w2a2", "bops": 1e5}, {"bits": "w8a8", "bops": 1.6e6}],
        "provenance": {"seed": 0, "versions": {"torch": "2.13.0"}},
    }


def test_pareto_front():
    pts = [(1, 0.5), (2, 0.7), (2, 0.6), (3, 0.65), (4, 0.9)]
    assert pareto_front(pts) == [(1, 0.5), (2, 0.7), (4, 0.9)]


def test_report_files_and_missing_summary(tmp_path):
    paths = render(_summary(), tmp_path)
    html = paths["html"].read_text()
    assert html.count("<svg") >= 5
    assert not re.search(r"(src|href)=[\"']https?://", html)  # self-contained: nothing fetched
    md = paths["md"].read_text()
    assert "## Per-layer bit-widths" in md and "| fc0 | 3 | 2 |" in md
    assert json.loads(paths["json"].read_text())["model"] == "tfc"
    with pytest.raises(ConfigError, match="summary.json"):
        report_run(tmp_path / "nothing")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (make install installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    paths = render(_summary(), tmp_path)
    png = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
           f"--screenshot={png}", "--window-size=1200,2400", paths["html"].as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    non_white = (img.sum(axis=2) < 720).mean()
    assert non_white > 0.03, f"page looks blank ({non_white:.1%} non-white pixels)"
    colourful = ((img.max(axis=2) - img.min(axis=2)) > 60).mean()
    assert colourful > 0.005, "no coloured plots visible"
    Path(tmp_path / "keep").write_text(str(png))


def test_report_has_a_verification_section_with_levels_inputs_and_the_three_accuracies(tmp_path):
    s = _summary()
    s["finn"]["verification"] = {
        "levels": [{"level": lv, "step": st, "n": 1000, "max_abs_diff": 3e-7, "integer": False, "top1_agree": 1.0,
                    "ok": True} for lv, st in (("tidy-up", "step_tidy_up"), ("folded", "step_minimize_bit_width"))],
        "n_inputs": 1000, "reference_spread": 9.5, "seconds": 21.3,
        "accuracy": {"pytorch": 0.9713, "qonnx": 0.9712, "finn_hw": 0.9712}}
    md = render(s, tmp_path)["md"].read_text()
    sec = md[md.index("## Verification"):]
    assert "on 1000 test images" in sec and "step_minimize_bit_width" in sec
    assert "PyTorch 97.13%, QONNX 97.12%, FINN hardware-layer graph 97.12%" in sec
    del s["finn"]["verification"]
    assert "NOT verified" in render(s, tmp_path)["md"].read_text()


def test_designs_section_plots_accuracy_against_finn_cost_with_the_searched_design(tmp_path):
    s = _summary()
    s["uniform"] = [{"design": "w1a1 (FINN-style)", "bops": 1e5, "lut": 27179.0, "bram18": 141.0, "dsp": 0.0,
                     "test acc": 0.63, "test acc sd": 0.002, "seeds": 3},
                    {"design": "w2a2 (FINN-style)", "bops": 4e5, "lut": 44485.0, "bram18": 277.0, "dsp": 0.0},
                    {"design": "searched (this package)", "bops": 2e5, "lut": 30000.0, "bram18": 150.0,
                     "test acc": 0.66, "seeds": 1}]
    s["uniform_note"] = "FINN cost: surrogate at 3,000 FPS"
    page = render(s, tmp_path)["html"].read_text()
    section = page.split("The searched design beside uniform designs")[1].split("</section>")[0]
    assert "<svg" in section and "surrogate at 3,000 FPS" in section and "27,179" in section
    s["uniform"] = [{k: v for k, v in r.items() if k != "test acc"} for r in s["uniform"]]  # no accuracy: no plot
    page = render(s, tmp_path)["html"].read_text()
    assert "<svg" not in page.split("The searched design beside uniform designs")[1].split("</section>")[0]
