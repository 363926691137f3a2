"""The FINN-aware search space: per-variable candidates, 1..8 bits, and every configuration it allows
passes finn-plus' estimate flow (conversion to hardware layers included)."""

from pathlib import Path

import numpy as np
import pytest

from bitswarm.boards import load_board
from bitswarm.models import get_model
from bitswarm.models.finn_support import FINN_BITS, padded_conv_inputs
from bitswarm.search.api import SEARCHERS, build_space, make_searcher
from bitswarm.search.bbpso import BBPSOSettings, random_position
from bitswarm.search.space import Space

FIX = Path(__file__).parent / "fixtures"


def _user_cnn():
    return get_model(f"{FIX}/byom_cnn.py:build", dataset="cifar10")


@pytest.mark.parametrize("model, padded", [("smallcnn", {"input_quant", "conv0", "conv1"}),
                                           ("cnv", {"input_quant"}), ("tfc", {"input_quant"})])
def test_finn_space_is_1_to_8_bits_with_no_1_bit_activation_before_a_padded_conv(model, padded):
    entry = get_model(model)
    space = build_space(entry, load_board("pynq-z2"), "finn")
    assert padded_conv_inputs(entry) | {"input_quant"} == padded
    for (name, kind), choice in zip(space.variables, space.choices, strict=True):
        assert set(choice) <= set(FINN_BITS)
        assert (1 in choice) == (not (kind == "a" and name in padded)), (name, kind, choice)


def test_finn_space_on_a_cpu_board_keeps_to_finn_bits():
    host = build_space(get_model("tfc"), load_board("host"), "finn")  # host's 16/32 are not FINN's
    assert host.candidates == FINN_BITS


def _narrow_space_with_rule() -> Space:
    """Per-variable sets of different sizes, plus a combination rule (fc0.w == 1 needs fc1.w == 1)."""
    entry = get_model("tfc")

    def narrow(layer, kind, cands):
        return {("input_quant", "a"): (8,), ("fc0", "w"): (1, 2, 4), ("fc3", "w"): (4, 8)}.get((layer, kind), cands)

    def rule(bits):
        if bits["fc0"].w == 1 and bits["fc1"].w != 1:
            d = bits.to_dict()
            d["layers"]["fc1"]["w"] = 1
            from bitswarm.models import BitConfig

            return BitConfig.from_dict(d)
        return None

    return Space.from_specs(entry.specs, (1, 2, 3, 4, 5, 6, 7, 8), entry.default_bits(), narrow=narrow,
                            rules=(rule,))


@pytest.mark.parametrize("algo", sorted(SEARCHERS))
def test_every_searcher_stays_in_each_variables_own_range_and_obeys_the_rules(algo):
    space = _narrow_space_with_rule()
    searcher = make_searcher(algo, space, BBPSOSettings(particles=6, iterations=4, gamma=2), 3,
                             np.linspace(0.1, 1.0, space.dim))
    rng = np.random.default_rng(0)
    seen = 0
    while not searcher.done():
        positions = searcher.ask()
        for pos in positions:
            assert all(0 <= v <= h for v, h in zip(pos, space.highs, strict=True)), pos
            assert space.allowed(pos)
            bits = space.to_bits(pos)
            assert bits["input_quant"].a == 8 and bits["fc0"].w in (1, 2, 4) and bits["fc3"].w in (4, 8)
        seen += len(positions)
        searcher.tell([(float(rng.random()), float(rng.random() < 0.3)) for _ in positions])
    assert seen >= 6 * 4


def _configs(entry, n, seed):
    """``n`` random configurations of the FINN-aware space; the first takes every variable's
    lowest candidate (1 bit wherever FINN allows it)."""
    space = build_space(entry, load_board("pynq-z2"), "finn")
    rng = np.random.default_rng(seed)
    positions = [tuple(0 for _ in range(space.dim))] + [random_position(space, rng) for _ in range(n - 1)]
    return [space.to_bits(p) for p in positions]


@pytest.mark.finn
@pytest.mark.parametrize("model, n", [("tfc", 4), ("cnv", 2), ("user-cnn", 3)])
def test_finn_maps_every_configuration_the_finn_aware_space_allows(tmp_path, model, n):
    from bitswarm.hw.finn_estimate import finn_estimate

    entry = _user_cnn() if model == "user-cnn" else get_model(model)
    configs = _configs(entry, n, seed=len(model))
    assert any(1 in (b.w, b.a) for _, b in configs[0].layers)
    for bits in configs[1:]:
        cost = finn_estimate(entry, bits, load_board("pynq-z2"), tmp_path, target_fps=3000)
        assert cost["lut"] > 0 and cost["cycles"] > 0, bits.short()
    # the most 1-bit configuration also through FINN's HLS/RTL code generation (what a deploy runs)
    import torch

    from bitswarm.flows.finn import build_finn
    from bitswarm.models.export import export_qonnx

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = entry.build(configs[0]).eval()
    onnx = export_qonnx(model, entry.input_shape, tmp_path / "lowest.onnx", verify=False).path

    class Env:
        cache_dir, vivado, vitis_hls = tmp_path, None, None

    r = build_finn(onnx, load_board("pynq-z2"), tmp_path / "codegen", target_fps=10000, env=Env())  # the deploy's
    assert r.estimates["lut"] > 0 and list((tmp_path / "codegen" / "codegen").iterdir()), configs[0].short()
