import pytest

from bitswarm.boards import load_board
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Constraint, get_cost_model
from bitswarm.models import get_model


def test_qonnx_inference_cost_tracks_bits():
    e, board = get_model("tfc"), load_board("pynq-z2")
    cost = get_cost_model("qonnx")
    low, high = cost(e, e.uniform_bits(2, 2), board), cost(e, e.uniform_bits(4, 4), board)
    assert low.source == "qonnx-inference-cost" and low["macs"] == high["macs"] == sum(s.macs for s in e.specs)
    assert high["bops"] == pytest.approx(4 * low["bops"])  # (4x4)/(2x2) bits per MAC
    assert high["weight_bits"] == pytest.approx(2 * low["weight_bits"])
    assert [lc.name for lc in low.per_layer] == ["fc0", "fc1", "fc2", "fc3"]
    assert Constraint("bops", low["bops"]).violation(high) == pytest.approx(3.0)
    assert Constraint("bops", high["bops"]).violation(low) == 0.0


@pytest.mark.parametrize("w, a", [(1, 1), (1, 2), (2, 1)])
def test_qonnx_counts_1_bit_weights_as_1_bit(w, a):
    from bitswarm.hw.cost_bitops import bit_metrics

    e, board = get_model("tfc"), load_board("pynq-z2")
    bits = e.uniform_bits(w, a)
    cost = get_cost_model("qonnx")(e, bits, board)
    exact = bit_metrics(e, bits)
    assert cost["weight_bits"] == exact["weight_bits"] and cost["bops"] == exact["bops"]


def test_unknown_cost_model_lists_registered():
    with pytest.raises(ConfigError, match=r"unknown cost model 'nope'; allowed: .*qonnx"):
        get_cost_model("nope")
