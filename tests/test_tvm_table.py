"""The calibrated per-layer TVM latency table: fit, held-out error, file round trip, bad files."""

import json
import random
import subprocess
import sys

import pytest

from bitswarm.boards import load_board
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import get_cost_model
from bitswarm.hw.tvm_table import LatencyTable, bit_class, calibrate, random_bits
from bitswarm.models import get_model


class _SyntheticLatency:
    """A latency that the table's form can express exactly: 1 ms + 0.1 ms per 'qcdq' activation quantizer."""

    def __call__(self, entry, bits, board):
        from bitswarm.hw.cost import Cost

        n = sum(bit_class(bits[s.name].a) == "qcdq" for s in entry.specs)
        return Cost("synthetic", {"latency_ms": 1.0 + 0.1 * n})


def test_fit_recovers_a_table_shaped_latency_and_reports_held_out_error(tmp_path):
    entry, board = get_model("tfc"), load_board("host")
    table = calibrate(entry, board, _SyntheticLatency(), n_train=40, n_test=10, seed=1)
    assert table.error["test_mape_pct"] < 1.0 and table.error["test_n"] == 10
    bits = random_bits(entry, board.bit_candidates, random.Random(7))
    cost = table.predict(entry, bits, board)
    assert cost["latency_ms"] == pytest.approx(_SyntheticLatency()(entry, bits, board)["latency_ms"], rel=0.01)
    assert sum(lc.values["latency_ms"] for lc in cost.per_layer) == pytest.approx(cost["latency_ms"])
    table.save(tmp_path / "t.json")
    assert LatencyTable.load(tmp_path / "t.json") == table
    with pytest.raises(ConfigError, match="the table is for tfc on host, not cnv on host"):
        table.predict(get_model("cnv"), get_model("cnv").default_bits(), board)


class _SyntheticIntLatency:
    """The ``int`` lowering's shape: 1 ms, minus 0.2 ms per layer that computes on integer codes
    (2..8-bit weights behind a 2..8-bit activation), plus 0.05 ms per 'qcdq' activation."""

    lowering = "int"

    def __call__(self, entry, bits, board):
        from bitswarm.hw.cost import Cost

        prev, ms = None, 1.0
        for s in entry.specs:
            b = bits[s.name]
            ms += 0.05 * (bit_class(b.a) == "qcdq")
            ms -= 0.2 * (s.has_weight and 2 <= b.w <= 8 and prev is not None and 2 <= prev <= 8)
            prev = b.a if s.has_act else prev
        return Cost("synthetic", {"latency_ms": ms})


def test_int_lowering_table_learns_which_layers_compute_on_integer_codes(tmp_path):
    entry, board = get_model("tfc"), load_board("host")
    table = calibrate(entry, board, _SyntheticIntLatency(), n_train=60, n_test=12, seed=2)
    assert table.lowering == "int" and table.error["test_mape_pct"] < 1.0
    assert all(table.deltas[f"{s.name}:int"] == pytest.approx(-0.2, abs=0.02) for s in entry.specs
               if f"{s.name}:int" in table.deltas) and any(k.endswith(":int") for k in table.deltas)
    table.save(tmp_path / "t.json")
    assert LatencyTable.load(tmp_path / "t.json") == table
    # the same samples read as a qcdq table cannot express the integer layers: a larger error
    qcdq = calibrate(entry, board, lambda e, b, bd: _SyntheticIntLatency()(e, b, bd), n_train=60, n_test=12, seed=2)
    assert qcdq.lowering == "qcdq" and qcdq.error["test_mape_pct"] > table.error["test_mape_pct"]


def test_corrupt_or_missing_table_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: field '-': not a TVM latency table"):
        get_cost_model("tvm", table=bad, cache_dir=tmp_path)
    bad.write_text(json.dumps({"model": "tfc"}))
    with pytest.raises(ConfigError, match="not a TVM latency table"):
        LatencyTable.load(bad)
    with pytest.raises(ConfigError, match="cannot read the TVM latency table"):
        LatencyTable.load(tmp_path / "missing.json")


@pytest.mark.tvm
def test_cli_calibrates_through_a_loopback_rpc_server_and_predicts(tmp_path):
    pytest.importorskip("tvm")
    out = tmp_path / "table.json"
    env = {"BITSWARM_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "bitswarm", "tvm", "calibrate", "--train", "4", "--test", "2",
                          "--repeat", "5", "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "held-out MAPE" in run.stdout and len(list((tmp_path / "cache" / "tvm-cost").glob("*.json"))) == 6
    table = LatencyTable.load(out)
    assert table.model == "tfc" and table.board == "host" and table.base_ms > 0
    run = subprocess.run([sys.executable, "-m", "bitswarm", "tvm", "measure", "--table", str(out), "--bits", "w4a4",
                          "--max-latency-ms", "1e-6"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and "(tvm-table)" in run.stdout and "violation" in run.stdout
