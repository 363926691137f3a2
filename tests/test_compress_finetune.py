"""Evolutionary fine-tuning and EDA+CC: grid, elitism, grouping, on synthetic problems and a tiny TFC."""

import numpy as np
import pytest
import torch

from bitswarm.data import Split
from bitswarm.models import get_model
from bitswarm.search.compress import artifacts, eda_cc, evo_finetune, qgrid


def _split(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
                 torch.randint(0, 10, (n,), generator=g))


def _tfc(w=3, a=8):
    torch.manual_seed(0)
    e = get_model("tfc")
    return qgrid.ptq(e.build(e.uniform_bits(w, a)), e.build(e.uniform_bits(32, 32)).state_dict(), _split(64))


def test_codes_roundtrip_and_grid():
    m = _tfc()
    grids = qgrid.extract_grids(m)
    assert [g.name for g in grids] == ["fc0", "fc1", "fc2", "fc3"]
    assert all(g.qmax == 3 for g in grids)
    flat = qgrid.flatten([g.codes for g in grids])
    assert qgrid.on_grid(flat, grids)
    moved = np.clip(flat + 1, *qgrid.bounds(grids))
    qgrid.write_codes(m, grids, qgrid.unflatten(moved, grids))
    again = qgrid.flatten([g.codes for g in qgrid.extract_grids(m)])
    assert np.array_equal(again, moved)  # the Brevitas quantizer reproduces written codes exactly


def test_evo_stays_on_grid_and_never_worse():
    m = _tfc()
    split = _split(300, seed=1)
    grids = qgrid.extract_grids(m)
    start = qgrid.flatten([g.codes for g in grids])
    seen = []
    fit = qgrid.Fitness(m, grids, split)

    def tracked(x):
        seen.append(x.copy())
        return fit(x)

    ratio = np.concatenate([g.ratio.reshape(-1).numpy() for g in grids])
    lo, hi = qgrid.bounds(grids)
    algo = evo_finetune.EvoFinetune(start, ratio, lo, hi, evo_finetune.EvoParams(rate=0.01), seed=0)
    res = evo_finetune.run(tracked, algo, generations=6)
    assert res.best_fitness >= res.start_fitness
    assert all(b >= a for a, b in zip(res.history, res.history[1:], strict=False))  # elitism
    for x in seen:
        assert qgrid.on_grid(x, grids)
        assert np.abs(x - start).max() <= 1  # radius 1 around nearest rounding
    assert any((x != start).sum() == algo.n_move for x in seen[1:])  # a child moves rate*n weights


def test_evo_improves_a_separable_problem():
    rng = np.random.default_rng(0)
    target = rng.integers(-3, 4, 500)
    start = np.clip(target + rng.choice([-1, 0, 0, 1], 500), -3, 3)
    f = lambda x: -np.abs(x - target).sum()
    lo, hi = np.full(500, -3), np.full(500, 3)
    algo = evo_finetune.EvoFinetune(start, start.astype(float), lo, hi, evo_finetune.EvoParams(rate=0.01), 0)
    res = evo_finetune.run(f, algo, generations=150)
    assert res.best_fitness > res.start_fitness + 20


def test_sigma_greedy_and_sampling():
    x = np.array([0, 1, 1, 0])
    p = eda_cc.sigma_greedy(x, 2, 0.95)
    assert np.allclose(p.sum(1), 1) and np.allclose(p[np.arange(4), x], 0.95)
    p16 = eda_cc.sigma_greedy(np.array([3]), 16, 0.7)
    assert np.isclose(p16[0, 3], 0.7) and np.isclose(p16[0, 0], 0.3 / 15)
    s = eda_cc.sample(p16, 4000, np.random.default_rng(0))
    assert s.min() >= 0 and s.max() <= 15 and abs((s == 3).mean() - 0.7) < 0.03


def _onemax_from(n=400, frac=0.3, seed=0):
    x0 = eda_cc.switch(n, frac, np.random.default_rng(seed))
    return x0, (lambda x: -float(x.sum()))  # optimum: all variables back at level 0


@pytest.mark.parametrize("cc", [True, False])
def test_eda_recovers_switched_solution(cc):
    x0, f = _onemax_from()
    res = eda_cc.run_eda_cc(f, x0, 2, eda_cc.EDAParams(gens=10), budget=1500, seed=0, cc=cc)
    assert res.best_fitness > res.start_fitness + 20
    assert res.best.min() >= 0 and res.best.max() <= 1
    fs = [h[1] for h in res.history]
    assert all(b >= a for a, b in zip(fs, fs[1:], strict=False))


def test_cc_grouping_fixes_group_a():
    rng = np.random.default_rng(0)
    x0 = eda_cc.switch(100, 0.5, rng)
    eda = eda_cc.EDA(x0, 0.0, 2, eda_cc.EDAParams(), rng)
    eda.reset(np.arange(50, 100))
    xs = eda.ask()
    assert (xs[:, :50] == x0[:50]).all()  # group A is held at the best individual
    assert xs.min() >= 0 and xs.max() <= 1


def test_ga_and_local_search_keep_levels_and_improve():
    x0, f = _onemax_from()
    for res in (eda_cc.run_ga(f, x0, 2, budget=800, seed=0, mutation=0.01),
                eda_cc.run_local_search(f, x0, 2, budget=800, seed=0, moves=0.005)):
        assert res.best.min() >= 0 and res.best.max() <= 1
        assert res.best_fitness > res.start_fitness


def test_binary_space_levels_are_adjacent_and_in_range():
    m = _tfc()
    grids = qgrid.extract_grids(m)
    codes = qgrid.flatten([g.codes for g in grids])
    lo, hi = qgrid.bounds(grids)
    ratio = np.concatenate([g.ratio.reshape(-1).numpy() for g in grids])
    for cand in (eda_cc.binary_space(codes, lo, hi, ratio=ratio),
                 eda_cc.binary_space(codes, lo, hi, rng=np.random.default_rng(0))):
        assert (np.abs(cand[:, 1] - cand[:, 0]) == 1).all()
        x = eda_cc.switch(codes.size, 0.3, np.random.default_rng(1))
        assert qgrid.on_grid(eda_cc.decode(cand, x), grids)


def test_result_directory_roundtrip(tmp_path):
    m = _tfc()
    e = get_model("tfc")
    artifacts.save_result(tmp_path, m, e.uniform_bits(3, 8), {"model": "tfc"}, {"method": "test"})
    back = artifacts.load_result(tmp_path)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(back.model(x), m.eval()(x))
