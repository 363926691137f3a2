"""PSO-k-means: pruning share, 2^b centroids, fixed-point codes in range, the Brevitas model agrees."""

import numpy as np
import pytest
import torch

from bitswarm.data import Split
from bitswarm.models import get_model
from bitswarm.search.compress import pso_kmeans as pk
from bitswarm.search.compress import qgrid


def _weights(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 0.05, n), rng.normal(0.3, 0.02, n // 10), rng.normal(-0.25, 0.02, n // 10)])


def test_magnitude_mask_prunes_smallest():
    w = np.array([0.1, -0.5, 0.01, 2.0, -0.02])
    mask = pk.magnitude_mask(w, 0.4)
    assert mask.tolist() == [True, True, False, True, False]


@pytest.mark.parametrize("init", pk.INITS)
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_cluster_layer_counts_and_codes(init, bits):
    w = _weights().reshape(-1, 20)
    r = pk.cluster_layer(w, bits, 0.5, init, np.random.default_rng(0))
    assert r.centroids.size == 2 ** bits
    qmax = 2 ** (bits - 1) - 1
    assert r.codes.shape == w.shape and r.codes.dtype == np.int64
    assert r.codes.min() >= -qmax and r.codes.max() <= qmax
    assert r.sparsity >= 0.5  # pruned weights are code 0 (small centroids may round to 0 too)


def test_pso_init_beats_random_points_on_average():
    x = _weights()
    pso = [pk.sse(x, pk.pso_init(x, 8, np.random.default_rng(s))) for s in range(3)]
    rnd = [pk.sse(x, pk.random_init(x, 8, np.random.default_rng(s))) for s in range(3)]
    assert np.mean(pso) < np.mean(rnd)


def test_kmeans_never_increases_error():
    x = _weights()
    c0 = pk.random_init(x, 8, np.random.default_rng(1))
    c, labels = pk.kmeans_1d(x, c0)
    assert pk.sse(x, c) <= pk.sse(x, c0) + 1e-12
    assert np.all(np.diff(c) >= 0) and labels.max() < 8


def test_fixed_point_steps():
    v = np.array([-0.9, -0.1, 0.0, 0.3, 1.2])
    for step in pk.STEPS:
        codes, delta = pk.fixed_point(v, 3, step)
        assert codes.min() >= -3 and codes.max() <= 3
        assert np.abs(codes * delta - v).max() <= max(delta / 2, 1.2 - 3 * delta) + 1e-12


def test_cluster_model_writes_exact_codes():
    torch.manual_seed(0)
    e = get_model("tfc")
    g = torch.Generator().manual_seed(0)
    calib = Split(torch.randint(0, 256, (64, 1, 28, 28), generator=g, dtype=torch.uint8), torch.zeros(64).long())
    m = qgrid.ptq(e.build(e.uniform_bits(3, 8)), e.build(e.uniform_bits(32, 32)).state_dict(), calib)
    res = pk.cluster_model(m, 0.3, "pso", seed=0, pso=pk.PSOParams(particles=6, iters=5))
    assert set(res) == {"fc0", "fc1", "fc2", "fc3"}
    for grid in qgrid.extract_grids(m):
        assert np.array_equal(grid.codes.numpy(), res[grid.name].codes)
        assert torch.allclose(grid.scale, torch.full_like(grid.scale, res[grid.name].delta))
