"""The FINN surrogate: fit on FINN-shaped synthetic samples, held-out error, file checks, the cost registry."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bitswarm.hw.calibrate as cal
from bitswarm.boards import load_board
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Cost, LayerCost, get_cost_model
from bitswarm.hw.cost_bitops import bit_metrics
from bitswarm.hw.cost_surrogate import default_path
from bitswarm.hw.surrogate import encode, load_surrogate
from bitswarm.models import get_model


def fake_finn(entry, bits, board, cache_dir=None, target_fps=10000) -> Cost:
    """A FINN-like estimate of TFC: an input thresholding layer, four MVAUs (the last one switching to a
    DSP variant for wide inputs, as finn-plus does) and a label select."""
    stream, layers, folding = bits["input_quant"].a, [], {"Thresholding_rtl_0": {"PE": 1}}
    layers.append(LayerCost("Thresholding_rtl_0", {"lut": 784 * (2 ** stream - 1), "bram18": 0, "dsp": 0,
                                                   "cycles": 784}))
    for i, s in enumerate(s for s in entry.specs if s.has_weight):
        b = bits[s.name]
        rtl = b.a is None and b.w >= 4 and stream >= 4
        simd = 8 if i == 0 else 2
        lut = 0 if rtl else 300 + 1.1 * simd * (b.w + stream) * 3 + (2 ** (b.a or 0)) * 2
        layers.append(LayerCost(s.name, {"lut": float(int(lut)), "bram18": float(math.ceil(b.w * s.params / 18432)),
                                         "dsp": float(rtl), "cycles": float(s.params // simd)}))
        folding[f"MVAU_{'rtl' if rtl else 'hls'}_{i}"] = {"PE": 1, "SIMD": simd}
        stream = b.a or stream
    layers.append(LayerCost("LabelSelect_hls_0", {"lut": 40.0, "bram18": 0.0, "dsp": 0.0, "cycles": 10.0}))
    tot = {q: sum(lc.values[q] for lc in layers) for q in ("lut", "bram18", "dsp")}
    cyc = [lc.values["cycles"] for lc in layers]
    values = {**tot, "uram": 0.0, "cycles": max(cyc), "latency_ms": sum(cyc) * 10 / 1e6,
              "throughput_fps": 1e8 / max(cyc)}
    return Cost("finn-estimate", values, tuple(layers), {"folding": folding})


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(cal, "finn_samples", lambda entry, board, configs, *a, progress=None, **k:
                        [fake_finn(entry, b, board) for b in configs])


def test_fit_reports_held_out_error_and_round_trips(fake, tmp_path):
    entry, board = get_model("tfc"), load_board("pynq-z2")
    sur, test = cal.calibrate(entry, board, tmp_path, n_train=60, n_test=20, seed=3)
    e = sur.error
    assert e["n_test"] == len(test) == 20 and e["n_train"] == 60
    assert set(e["test"]) >= {"lut", "bram18", "dsp", "cycles", "latency_ms", "throughput_fps"}
    assert e["test"]["cycles"]["max_ape_pct"] == 0 and e["test"]["bram18"]["mape_pct"] < 1
    assert e["test"]["lut"]["mape_pct"] < 2
    assert e["dependencies"]["fc0"]["bram18"] == ["fc0:w"]  # verified on the data, not assumed
    assert e["dependencies"]["Thresholding_rtl_0"]["lut"] == ["input_quant:a"]
    held_out = {b for b, _ in test}
    train, _ = cal.split_configs(entry, cal.surrogate_candidates(board), 60, 20, 3)
    assert not held_out & set(train)
    path = tmp_path / "s.json"
    sur.save(path)
    assert load_surrogate(path) == sur
    bits = test[0][0]
    cost = get_cost_model("surrogate", path=path)(entry, bits, board)
    assert cost.source == "surrogate" and cost["avg_bits"] == pytest.approx(bit_metrics(entry, bits)["avg_bits"])
    assert sum(lc.values["lut"] for lc in cost.per_layer) == pytest.approx(cost["lut"])
    many = sur.predict_many(encode(entry, [b for b, _ in test]))
    assert many["lut"][0] == pytest.approx(cost["lut"]) and len(many["bops"]) == 20
    for q in ("bops", "weight_bits", "weight_avg_bits"):
        assert many[q] == pytest.approx([bit_metrics(entry, b)[q] for b, _ in test])


def test_default_path_missing_and_mismatched_files_are_config_errors(fake, tmp_path):
    entry, board = get_model("tfc"), load_board("pynq-z2")
    cost = get_cost_model("surrogate", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="bitswarm calibrate --model tfc --board pynq-z2"):
        cost(entry, entry.default_bits(), board)
    sur, _ = cal.calibrate(entry, board, tmp_path, n_train=12, n_test=3)
    sur.save(default_path(tmp_path, "tfc", "pynq-z2", 10000))
    assert cost(entry, entry.default_bits(), board)["lut"] > 0
    cnv = get_model("cnv")
    with pytest.raises(ConfigError, match="field 'model'.*tfc"):
        get_cost_model("surrogate", path=default_path(tmp_path, "tfc", "pynq-z2", 10000))(
            cnv, cnv.default_bits(), board)
    with pytest.raises(ConfigError, match="field 'fpga'"):
        cost(entry, entry.default_bits(), load_board("host"))


def test_corrupt_files_name_the_file_and_field(fake, tmp_path):
    entry, board = get_model("tfc"), load_board("pynq-z2")
    sur, _ = cal.calibrate(entry, board, tmp_path, n_train=12, n_test=3)
    good = tmp_path / "good.json"
    sur.save(good)
    data = json.loads(good.read_text())
    bad = tmp_path / "bad.json"
    cases = [("{oops", "bad.json: field '-': not JSON"), (json.dumps({"format": "x"}), "field 'format'"),
             (json.dumps({**data, "version": 99}), "field 'version'"),
             (json.dumps({k: v for k, v in data.items() if k != "layers"}), "field 'layers'")]
    data["layers"][1]["tables"]["lut"]["values"] = [1.0]
    cases.append((json.dumps(data), r"field 'layers\[1\].tables.lut.values'"))
    for text, msg in cases:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=msg):
            get_cost_model("surrogate", path=bad)(entry, entry.default_bits(), board)


def test_unknown_cost_name_lists_surrogate():
    with pytest.raises(ConfigError, match="unknown cost model 'surogate'.*surrogate"):
        get_cost_model("surogate")


def test_uncalibrated_bit_width_is_refused(fake, tmp_path):
    entry, board = get_model("tfc"), load_board("pynq-z2")
    sur, _ = cal.calibrate(entry, board, tmp_path, n_train=12, n_test=3)
    x = encode(entry, [entry.uniform_bits(1, 1)])
    with pytest.raises(ConfigError, match=r"bit-widths \[1\] were not calibrated"):
        sur.predict_many(x)
    assert np.isfinite(sur.predict_many(encode(entry, [entry.uniform_bits(2, 2)]))["lut"]).all()


@pytest.mark.finn
def test_cli_calibrates_tfc_with_real_finn(tmp_path):
    out = tmp_path / "tfc.json"
    env = {"BITSWARM_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "bitswarm", "calibrate", "--model", "tfc", "--board", "pynq-z2",
                          "--train", "4", "--test", "2", "--out", str(out)], capture_output=True, text=True,
                         env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "held-out error on 2 configurations" in run.stdout
    sur = load_surrogate(out)
    assert sur.error["test"]["lut"]["n"] == 2 and sur.model == "tfc"


def test_correction_ratio_from_one_point_and_linear_from_two(tmp_path):
    from bitswarm.hw.correction import correction_from, fit_correction, read_measured, read_post_synth

    assert fit_correction([100.0], [150.0]) == {"scale": 1.5, "offset": 0.0, "points": 1, "kind": "ratio"}
    lin = fit_correction([100.0, 200.0], [130.0, 250.0])
    assert lin["scale"] == pytest.approx(1.2) and lin["offset"] == pytest.approx(10.0)
    assert fit_correction([0.0], [0.0]) is None
    corr, lines = correction_from([{"name": "a", "estimate": {"lut": 100.0, "bram18": 10.0, "dsp": 0.0},
                                    "measured": {"lut": 120.0, "bram18": 20.0, "dsp": 0.0}}])
    assert corr["lut"]["scale"] == pytest.approx(1.2) and "dsp" not in corr and "in-sample" in lines[-1]
    psr = tmp_path / "post_synth_resources.json"
    psr.write_text(json.dumps({"(top)": {"LUT": 1000, "FF": 2000, "BRAM_36K": 3, "BRAM_18K": 1, "DSP48E": 2},
                               "MVAU_hls_0": {"LUT": 500}}))
    assert read_post_synth(psr, "x") == {"lut": 1000, "ff": 2000, "bram18": 7, "dsp": 2, "uram": 0}
    meas = tmp_path / "m.yaml"
    meas.write_text("model: tfc\nmeasurements:\n  - bits: w2a2\n    post_synth_resources: post_synth_resources.json\n")
    (m,) = read_measured(meas, get_model("tfc"), (2, 3))
    assert m["measured"]["lut"] == 1000 and m["bits"]["fc0"].w == 2
    meas.write_text("model: cnv\nmeasurements: [{bits: w2a2, measured: {lut: 1}}]\n")
    with pytest.raises(ConfigError, match="field 'model'"):
        read_measured(meas, get_model("tfc"), (2, 3))


def test_published_cnv_w1a1_file_reads():
    from bitswarm.hw.correction import read_measured

    published = Path(__file__).resolve().parents[1] / "bench/measured/cnv-w1a1-xc7z020-published.yaml"
    (m,) = read_measured(published, get_model("cnv"), (1, 8))
    assert m["measured"]["bram18"] == 205 and m["bits"]["input_quant"].a == 8 and m["bits"]["conv3"].w == 1
    assert m["folding_file"].endswith("cnv-w1a1_folding_config.json")


def test_surrogate_applies_its_correction(fake, tmp_path):
    from dataclasses import replace

    entry, board = get_model("tfc"), load_board("pynq-z2")
    sur, _ = cal.calibrate(entry, board, tmp_path, n_train=12, n_test=3)
    x = encode(entry, [entry.default_bits()])
    corrected = replace(sur, correction={"lut": {"scale": 2.0, "offset": 5.0}})
    assert corrected.predict_many(x)["lut"][0] == pytest.approx(2 * sur.predict_many(x)["lut"][0] + 5)
    assert corrected.predict_many(x)["bram18"][0] == sur.predict_many(x)["bram18"][0]


def test_finn_mvau_folding_rule_reproduces_cnv_conv1():
    """conv1 of CNV (MW 576, MH 64, 784 pixels): SIMD capped by 36 / weight bits, as seen in FINN's samples."""
    from bitswarm.hw.surrogate_folding import mvau_bram, mvau_fold

    assert mvau_fold(576, 64, 784, 6, 10000) == (64, 6)  # 75,264 cycles: the target is out of reach
    assert mvau_fold(576, 64, 784, 8, 10000) == (64, 4)
    assert mvau_fold(784, 64, 1, 4, 10000) == (1, 7)  # TFC fc0 meets the target with 7,168 cycles
    # second pass for T = 75,264: FINN tests the target before the width cap, so SIMD 27 (108 bits) is kept
    assert mvau_fold(27, 64, 900, 4, 75264) == (1, 27)
    assert mvau_bram(np.array([512.0]), np.array([36.0]))[0] == 1
