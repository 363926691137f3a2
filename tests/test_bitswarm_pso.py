"""bitswarm's own BBPSO variant: cost weights, accuracy sensitivity, the feasibility-repaired start."""

import numpy as np
import pytest
import torch

from bitswarm.data import Split
from bitswarm.hw.cost_bitops import bit_metrics
from bitswarm.models import get_model
from bitswarm.search import sensitivity
from bitswarm.search.api import make_searcher
from bitswarm.search.bbpso import BBPSOSettings, layer_importance
from bitswarm.search.bitswarm_pso import BitswarmPSO, cost_weights
from bitswarm.search.space import Space

CANDS = (1, 2, 3, 4, 5, 6, 7, 8)


def _tfc():
    e = get_model("tfc")
    return e, Space.from_specs(e.specs, CANDS, e.default_bits())


def test_cost_weights_follow_the_macs_each_variable_multiplies():
    e, space = _tfc()
    w = dict(zip(space.variables, cost_weights(e, space.variables), strict=True))
    assert abs(np.mean(list(w.values())) - 1) < 1e-9
    assert w[("fc0", "w")] == max(w.values())  # fc0 carries most of TFC's MACs
    assert w[("input_quant", "a")] == w[("fc0", "w")]  # the input quantizer feeds fc0
    assert w[("fc0", "a")] == w[("fc1", "w")] < w[("fc0", "w")]


def test_sensitivity_is_the_mean_drop_of_one_variable_at_its_lowest_candidates(monkeypatch):
    e, space = _tfc()
    top = tuple(space.highs)
    j_in, j_fc0 = space.variables.index(("input_quant", "a")), space.variables.index(("fc0", "w"))
    seen = []

    def fake(entry, fp_state, sp, pos, split):  # fc0's weights lose 0.3 per missing candidate, the input nothing
        seen.append(pos)
        return 0.9 - 0.3 * (top[j_fc0] - pos[j_fc0]) / top[j_fc0] * (pos[j_fc0] < 2)

    monkeypatch.setattr(sensitivity, "ptq_accuracy", fake)
    sens = sensitivity.ptq_sensitivity(e, {}, space, None, levels=2)
    assert len(seen) == 1 + 2 * space.dim and seen[0] == top  # the all-high reference, then 2 levels each
    assert sens[j_in] == sensitivity.FLOOR and sens[j_fc0] == pytest.approx(np.mean([0.3, 0.3 * 6 / 7]))
    assert (sens[[k for k in range(space.dim) if k != j_fc0]] == sensitivity.FLOOR).all()


def test_sensitivity_runs_forward_passes_of_the_real_model():
    e, space = _tfc()
    fp_state = {k: v.clone() for k, v in e.build(e.default_bits()).state_dict().items()}
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (64, 1, 28, 28), generator=g, dtype=torch.uint8), torch.randint(0, 10, (64,)))
    first = sensitivity.ptq_sensitivity(e, fp_state, space, split, levels=1)
    assert first.shape == (space.dim,) and (first >= sensitivity.FLOOR).all() and (first <= 1).all()
    assert np.array_equal(first, sensitivity.ptq_sensitivity(e, fp_state, space, split, levels=1))


def test_a_variable_cheap_to_lose_gives_up_its_bits_first_in_the_repaired_start():
    """TFC's input quantizer and fc0's weights multiply the same MACs (equal cost weights); divided by an
    accuracy sensitivity in which the input loses nothing, the repaired starts keep fc0's weight bits and
    give up the input's (the good region of TFC at avg op bits <= 3)."""
    e, space = _tfc()
    j_in, j_fc0 = space.variables.index(("input_quant", "a")), space.variables.index(("fc0", "w"))

    def probe(pos):
        return max(0.0, bit_metrics(e, space.to_bits(pos))["avg_bits"] / 3.0 - 1)

    sens = np.full(space.dim, 0.1)
    sens[j_in], sens[j_fc0] = sensitivity.FLOOR, 0.4
    imp = layer_importance(sens, BitswarmPSO.alpha, 1.0)
    settings = BBPSOSettings(particles=10, iterations=2)
    flat = make_searcher("bitswarm", space, settings, 0, imp, probe=probe, weights=cost_weights(e, space.variables))
    ours = make_searcher("bitswarm", space, settings, 0, imp, probe=probe,
                         weights=cost_weights(e, space.variables) / sens)
    start, before = ours.ask(), flat.ask()
    assert all(probe(p) == 0 for p in start)
    assert np.mean([p[j_fc0] - p[j_in] for p in start]) > np.mean([p[j_fc0] - p[j_in] for p in before])
    assert np.mean([p[j_fc0] for p in start]) >= 2  # fc0 keeps >= 3-bit weights on average


def test_repaired_initial_swarm_is_feasible_where_the_faithful_one_is_not():
    e, space = _tfc()
    limit = 2.0

    def probe(pos):
        return max(0.0, bit_metrics(e, space.to_bits(pos))["avg_bits"] / limit - 1)

    imp = layer_importance(np.linspace(0.1, 1.0, space.dim), 4.0, 1.0)
    settings = BBPSOSettings(particles=10, iterations=2)
    faithful = make_searcher("bbpso-q", space, settings, 0, imp).ask()
    ours = make_searcher("bitswarm", space, settings, 0, imp, probe=probe, weights=cost_weights(e, space.variables))
    assert isinstance(ours, BitswarmPSO)
    start = ours.ask()
    assert sum(probe(p) > 0 for p in faithful) >= 5  # the importance centre starts high: mostly infeasible
    assert all(probe(p) == 0 for p in start)
    # repaired, not collapsed: the starts keep more than the cheapest corner's bits and differ
    assert len(set(start)) > 5 and all(sum(p) > 0 for p in start)


def test_repair_leaves_a_feasible_position_alone_and_falls_back_to_the_cheapest_corner():
    e, space = _tfc()
    s = BitswarmPSO(space, BBPSOSettings(), 0, probe=lambda pos: 0.0)
    assert s.repair((3,) * space.dim) == (3,) * space.dim
    s = BitswarmPSO(space, BBPSOSettings(), 0, probe=lambda pos: 1.0)
    assert s.repair((3,) * space.dim) == (0,) * space.dim


def test_local_search_trades_bits_along_the_budget_edge():
    """From a feasible Pb on the budget's edge, the local search raises one variable and takes the bits
    from the costliest others until the cost model says feasible: every trade is feasible, and they do
    move the costly variables (TFC's fc0 weights up with the input quantizer down is one such trade)."""
    e, space = _tfc()
    limit = 3.0

    def probe(pos):
        return max(0.0, bit_metrics(e, space.to_bits(pos))["avg_bits"] / limit - 1)

    s = BitswarmPSO(space, BBPSOSettings(particles=4), 0, probe=probe, weights=cost_weights(e, space.variables))
    v = {var: i for i, var in enumerate(space.variables)}
    edge = [1] * space.dim  # 2 bits everywhere but a 5-bit input and 1-bit fc0 weights
    edge[v[("input_quant", "a")]], edge[v[("fc0", "w")]] = 4, 0
    s.pb = [tuple(edge)] * 4
    raised = list(edge)
    raised[v[("fc0", "w")]] = 1
    assert probe(s.pb[0]) == 0 and probe(tuple(raised)) > 0  # on the edge: fc0.w cannot simply go up
    trades = [s._perturb(0, np.random.default_rng(k)) for k in range(40)]
    assert all(probe(t) == 0 for t in trades)
    assert any(t[v[("fc0", "w")]] > 0 and t[v[("input_quant", "a")]] < 4 for t in trades)
    assert len(set(trades)) > 5
