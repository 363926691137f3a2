"""bitswarm's own BBPSO variant: cost weights, per-weight importance, the feasibility-repaired start."""

import numpy as np
import torch

from bitswarm.hw.cost_bitops import bit_metrics
from bitswarm.models import get_model
from bitswarm.search.api import make_searcher
from bitswarm.search.bbpso import BBPSOSettings, layer_importance
from bitswarm.search.bitswarm_pso import BitswarmPSO, cost_weights, per_weight_norms
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


def test_per_weight_norms_divide_by_the_square_root_of_fan_in():
    variables = (("a", "w"), ("b", "w"), ("c", "a"))
    state = {"a.weight": torch.ones(4, 100), "b.weight": torch.ones(4, 4, 3, 3)}
    out = per_weight_norms(np.array([10.0, 6.0, 2.0]), state, variables)
    assert np.allclose(out, [1.0, 1.0, 1.0])  # no weight: the mean of the others


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
