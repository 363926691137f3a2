"""The FINN surrogate: fit on FINN-shaped synthetic samples, held-out error, file checks, the cost registry."""

import json
import math
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import bitswarm.hw.calibrate as cal
from bitswarm.boards import load_board
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Cost, LayerCost, get_cost_model
from bitswarm.hw.cost_bitops import bit_metrics
from bitswarm.hw.cost_surrogate import default_path
from bitswarm.hw.surrogate import encode, load_surrogate, variables
from bitswarm.models import BitConfig, get_model


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
        stored = b.w if b.w > 1 or stream == 1 else 2  # finn-plus: a 1-bit weight is 2 bits unless XNOR (1-bit in)
        layers.append(LayerCost(s.name, {"lut": float(int(lut)), "bram18": float(math.ceil(stored * s.params / 18432)),
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


def test_calibration_covers_the_low_bit_corner_where_finn_takes_its_xnor_path(fake, tmp_path):
    """Uniform draws rarely put a 1-bit weight behind a 1-bit activation; the low-bit stratum does, and
    the surrogate then gets FINN's XNOR weight memory right at the corner where budgets bind."""
    entry, board = get_model("tfc"), load_board("pynq-z2")
    train, test = cal.split_configs(entry, cal.surrogate_candidates(board), 40, 12, 0)
    lowest = train[0]
    assert all(b.w in (1, None) and b.a in (1, 2, None) for _, b in lowest.layers)
    assert lowest["input_quant"].a == 2 and lowest["fc1"].a == 1  # the input keeps >= 2 bits in FINN's space
    choices = dict(zip(variables(entry), cal.surrogate_choices(entry, cal.surrogate_candidates(board)), strict=True))

    def is_low(c):
        return all(getattr(c[name], kind) in cands[:2] for (name, kind), cands in choices.items())

    assert [is_low(c) for c in test] == [False] * 9 + [True] * 3 and is_low(lowest)
    sur, _ = cal.calibrate(entry, board, tmp_path, n_train=40, n_test=12, seed=0)
    assert "test_low" in sur.error and sur.error["n_test_low"] == 3
    xnor = BitConfig.from_dict({"layers": {**lowest.to_dict()["layers"], "fc3": {"w": 2}}})
    for bits in (lowest, xnor):
        truth = fake_finn(entry, bits, board)
        assert sur.predict_many(encode(entry, [bits]))["bram18"][0] == pytest.approx(truth["bram18"]), bits.short()


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


def test_shipped_calibration_is_used_when_the_cache_has_none_and_refused_when_stale(fake, tmp_path, monkeypatch):
    import bitswarm.hw.cost_surrogate as cs

    entry, board = get_model("tfc"), load_board("pynq-z2")
    shipped = tmp_path / "shipped"
    monkeypatch.setattr(cs, "SHIPPED_DIR", shipped)
    sur, _ = cal.calibrate(entry, board, tmp_path, n_train=12, n_test=3)
    assert sur.model_digest and "finn-plus" in sur.tools  # written by the calibration
    sur.save(shipped / default_path(tmp_path, "tfc", "pynq-z2", 10000).name)
    cache = tmp_path / "cache"
    assert cs.find_default(cache, "tfc", "pynq-z2", 10000).parent == shipped
    assert get_cost_model("surrogate", cache_dir=cache)(entry, entry.default_bits(), board)["lut"] > 0
    stale = json.loads((shipped / "tfc-pynq-z2-fps10000.json").read_text())
    (shipped / "tfc-pynq-z2-fps10000.json").write_text(json.dumps({**stale, "model_digest": "0" * 20}))
    with pytest.raises(ConfigError, match="field 'model_digest'"):
        get_cost_model("surrogate", cache_dir=cache)(entry, entry.default_bits(), board)
    (shipped / "tfc-pynq-z2-fps10000.json").write_text(json.dumps({**stale, "tools": {"finn-plus": "0.1"}}))
    with pytest.raises(ConfigError, match="field 'tools'"):
        get_cost_model("surrogate", cache_dir=cache)(entry, entry.default_bits(), board)
    sur.save(default_path(cache, "tfc", "pynq-z2", 10000))  # the cache's own file comes first
    assert cs.find_default(cache, "tfc", "pynq-z2", 10000).parent.parent == cache


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
    assert sur.candidates == tuple(range(1, 9))
    with pytest.raises(ConfigError, match=r"bit-widths \[16\] were not calibrated"):
        sur.predict_many(encode(entry, [entry.uniform_bits(16, 16)]))
    ones = entry.uniform_bits(1, 1).to_dict()
    ones["layers"]["input_quant"]["a"] = 2  # the FINN-aware space keeps the input quantizer at >= 2 bits
    assert np.isfinite(sur.predict_many(encode(entry, [BitConfig.from_dict(ones)]))["lut"]).all()


def test_per_variable_candidates_a_variable_without_1_bit(fake, tmp_path):
    """The tables index each variable by its own candidates: one without 1 bit still works, and 1 bit is
    refused there (naming the variable) but taken where it was calibrated."""
    from bitswarm.hw.surrogate_fit import fit

    entry, board = get_model("tfc"), load_board("pynq-z2")
    choices = tuple((2, 3, 4, 6, 8) if v == ("input_quant", "a") else (1, 2, 4, 8) for v in variables(entry))
    configs = cal.sample_configs(entry, choices, 30, 0, "train")
    assert {b["input_quant"].a for b in configs} <= {2, 3, 4, 6, 8} and 1 in {b["fc0"].w for b in configs}
    sur, _ = fit(entry, board, "fps:10000", choices, [(b, fake_finn(entry, b, board)) for b in configs])
    assert sur.choices == choices and sur.sizes()[:2] == [5, 4]
    path = tmp_path / "s.json"
    sur.save(path)
    assert load_surrogate(path) == sur
    ok = BitConfig.uniform(entry.specs, 1, 1, input_quant=(None, 2))
    assert sur.predict_many(encode(entry, [ok]))["lut"][0] == pytest.approx(fake_finn(entry, ok, board)["lut"], rel=0.2)
    with pytest.raises(ConfigError, match=r"field 'input_quant.a': bit-widths \[1\] were not calibrated"):
        sur.predict_many(encode(entry, [entry.uniform_bits(1, 1)]))


def test_old_version_file_is_refused_with_the_recalibrate_command(fake, tmp_path):
    entry, board = get_model("tfc"), load_board("pynq-z2")
    sur, _ = cal.calibrate(entry, board, tmp_path, n_train=12, n_test=3)
    data = json.loads(json.dumps({"format": "bitswarm-finn-surrogate", **asdict(sur)}))
    data.pop("choices"), data.pop("input_shape")  # as version 1 wrote it
    old = {**data, "version": 1, "candidates": [2, 3, 4, 5, 6, 7, 8], "policy": "fps:50000"}
    default = default_path(tmp_path, "tfc", "pynq-z2", 50000)
    default.parent.mkdir(parents=True)
    for path in (tmp_path / "mine.json", default):
        path.write_text(json.dumps(old))
        with pytest.raises(ConfigError) as e:
            get_cost_model("surrogate", path=path)(entry, entry.default_bits(), board)
        out = "" if path == default else f" --out {path}"
        assert str(e.value) == (f"{path}: field 'version': version 1 is out of date (this bitswarm reads version 2: "
                                "per-layer candidates over FINN's 1..8 bits); recalibrate; allowed: run `bitswarm "
                                f"calibrate --model tfc --board pynq-z2 --target-fps 50000{out}` first")
    with pytest.raises(ConfigError, match=r"version 1 is out of date.*--target-fps 50000` first"):
        get_cost_model("surrogate", cache_dir=tmp_path, target_fps=50000)(entry, entry.default_bits(), board)
    user = {**old, "model": "nets/mine.py:build"}
    (tmp_path / "user.json").write_text(json.dumps(user))
    with pytest.raises(ConfigError, match=r"--model nets/mine.py:build --board pynq-z2 --input-shape C,H,W"):
        load_surrogate(tmp_path / "user.json")


def test_calibration_configs_follow_finn_narrow_and_include_1_bit():
    """smallcnn: its input quantizer and activations feed zero-padded convs or MaxPools (no 1-bit there);
    each variable is drawn from exactly what ``finn_narrow`` keeps of the board's 1..8, 1 bit included."""
    from bitswarm.models.finn_support import finn_narrow

    entry, board = get_model("smallcnn"), load_board("pynq-z2")
    cands = cal.surrogate_candidates(board)
    assert cands == tuple(range(1, 9))
    choices = cal.surrogate_choices(entry, cands)
    narrow = finn_narrow(entry)
    assert choices == tuple(narrow(n, k, cands) for n, k in variables(entry))
    assert choices[variables(entry).index(("input_quant", "a"))] == tuple(range(2, 9))
    train, test = cal.split_configs(entry, cands, 40, 10, 0)
    x = encode(entry, train + test)
    for v, c in enumerate(choices):
        assert set(x[:, v].tolist()) == set(c), variables(entry)[v]  # all of them drawn, nothing else
    with_1 = {variables(entry)[v] for v, c in enumerate(choices) if 1 in c}
    assert {("conv0", "w"), ("fc0", "w")} <= with_1 and ("input_quant", "a") not in with_1


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


@pytest.mark.finn
def test_real_calibration_over_1_to_8_bits_at_a_target_tfc_meets(tmp_path):
    """100,000 FPS: every TFC layer meets the target, so FINN folds once and there is one T (this used to
    crash the fit); 4 + 2 FINN runs, 1-bit values among them."""
    entry, board = get_model("tfc"), load_board("pynq-z2")
    sur, test = cal.calibrate(entry, board, tmp_path, n_train=4, n_test=2, target_fps=100000)
    assert sur.policy == "fps:100000" and sur.t_values == (1000.0,) and sur.candidates == tuple(range(1, 9))
    train, _ = cal.split_configs(entry, cal.surrogate_candidates(board), 4, 2, 0)
    assert (encode(entry, train + [b for b, _ in test]) == 1).any()
    # FINN's folding rule (1-bit weights folded 2 bits wide, as FINN does) reproduces every MVAU's cycles
    assert {lay.name: lay.tables["cycles"].how for lay in sur.layers if lay.name.startswith("fc")} == dict.fromkeys(
        ("fc0", "fc1", "fc2", "fc3"), "finn-folding")
    assert sur.error["test"]["cycles"]["max_ape_pct"] == 0
    path = tmp_path / "tfc-100k.json"
    sur.save(path)
    ones = entry.uniform_bits(1, 1).to_dict()
    ones["layers"]["input_quant"]["a"] = 2  # the input quantizer keeps >= 2 bits (FINN-aware space)
    cost = get_cost_model("surrogate", path=path)(entry, BitConfig.from_dict(ones), board)
    assert 0 < cost["cycles"] <= 1000 and cost["lut"] > 0 and cost["throughput_fps"] >= 100000


CNN = f"{Path(__file__).parent / 'fixtures' / 'byom_cnn.py'}:build"


def test_cli_calibrate_resolves_a_user_model_from_its_input_shape_alone(tmp_path, monkeypatch, capsys):
    from bitswarm.cli import main

    seen = {}

    def stop(entry, board, *a, **k):
        seen["entry"] = entry
        raise ConfigError("stub", "-", "stopped after argument resolution")

    monkeypatch.setattr(cal, "calibrate", stop)
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["calibrate", "--model", CNN, "--train", "2", "--test", "2"]
    # --input-shape is enough, even beside a dataset that does not exist: no data is read
    assert main([*argv, "--input-shape", "3,32,32", "--dataset", str(tmp_path / "none.npz")]) == 2
    assert "stopped after argument resolution" in capsys.readouterr().err
    entry = seen.pop("entry")
    assert entry.name == CNN and entry.input_shape == (3, 32, 32) and ("classifier", "w") in variables(entry)
    for extra, msg in (([], "needs its input shape; allowed: --input-shape C,H,W"),
                       (["--input-shape", "3,32"], "cannot read '3,32'")):
        assert main([*argv, *extra]) == 2 and msg in capsys.readouterr().err
    assert main(["calibrate", "--model", "tfc", "--input-shape", "3,32,32"]) == 2
    assert "zoo model tfc is calibrated as it is (mnist, input 1,28,28)" in capsys.readouterr().err and not seen


@pytest.mark.finn
def test_cli_calibrates_a_user_model_from_its_input_shape(tmp_path):
    out = tmp_path / "cnn.json"
    env = {"BITSWARM_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "bitswarm", "calibrate", "--model", CNN, "--input-shape", "3,32,32",
                          "--train", "2", "--test", "1", "--out", str(out)], capture_output=True, text=True,
                         env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    sur = load_surrogate(out)
    assert sur.model == CNN and sur.input_shape == (3, 32, 32) and sur.error["n_test"] == 1
    entry = get_model(CNN, input_shape=(3, 32, 32))
    assert sur.choices == cal.surrogate_choices(entry, tuple(range(1, 9))) and 1 in sur.candidates
    assert dict(zip(sur.variables, sur.choices, strict=True))[("input_quant", "a")] == tuple(range(2, 9))


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


def test_the_shipped_cnv_calibration_serves_a_3000_fps_search_and_matches_finn(tmp_path):
    """`bitswarm search --cost surrogate --target-fps 3000` on CNV: the shipped file (hw/calibrated), with no
    calibration in the cache; its uniform w1a2/w2a2 costs agree with the FINN estimates in the repo."""
    from bitswarm.commands.search import _calibrated_board
    from bitswarm.env import Environment
    from bitswarm.search.api import SearchSpec

    entry, board = get_model("cnv"), load_board("pynq-z2")
    env = Environment(data_dir=None, cache_dir=tmp_path, vivado=None, vitis_hls=None, ray_address=None)
    spec = SearchSpec(cost="surrogate", constraints=(), target_fps=3000)
    assert _calibrated_board(entry, board, env, spec).bit_candidates == board.bit_candidates  # 1..8
    cost = get_cost_model("surrogate", target_fps=3000, cache_dir=tmp_path)
    finn = json.loads((Path(__file__).parent.parent / "bench/results/cnv-uniform/estimates-3000fps.json").read_text())
    for w, a in ((1, 2), (2, 2)):
        c = cost(entry, entry.finn_design_bits(w, a), board)
        ref = finn[f"w{w}a{a}"]
        assert c["lut"] == pytest.approx(ref["lut"], rel=0.01) and c["bram18"] == pytest.approx(ref["bram18"], abs=2)
    with pytest.raises(ConfigError, match="fps:10000"):  # no calibration at another folding
        _calibrated_board(entry, board, env, SearchSpec(cost="surrogate", constraints=(), target_fps=10000))


def test_shipped_cnv_surrogate_reproduces_finn_at_finns_own_designs():
    """FINN's uniform designs sit in the low-bit corner where the XNOR path halves weight memory; the
    shipped surrogate must give their recorded finn-plus estimates (a search 'within w1a1's resources'
    is refused otherwise), BRAM18 exactly."""
    from bitswarm.hw.cost_surrogate import SHIPPED_DIR, SurrogateCost
    from bitswarm.models import FINN_DESIGNS

    recorded = json.loads((Path(__file__).parents[1] / "bench/results/cnv-uniform/estimates-3000fps.json").read_text())
    entry, board = get_model("cnv"), load_board("pynq-z2")
    cost = SurrogateCost(SHIPPED_DIR / "cnv-pynq-z2-fps3000.json", target_fps=3000)
    for w, a in FINN_DESIGNS:
        got, want = cost(entry, entry.finn_design_bits(w, a), board), recorded[f"w{w}a{a}"]
        assert got["bram18"] == pytest.approx(want["bram18"], abs=0.01), (w, a)
        assert got["lut"] == pytest.approx(want["lut"], rel=0.01), (w, a)
