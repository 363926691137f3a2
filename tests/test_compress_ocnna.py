"""OCNNA: the importance formula, top-percentile selection, surgery shapes, RPR, saved architecture."""

import numpy as np
import pytest
import torch

from bitswarm.data import Split
from bitswarm.errors import ConfigError
from bitswarm.search.compress import artifacts, nets, ocnna, surgery


def _dvar(n=40, shape=(1, 28, 28), seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8), torch.zeros(n).long())


def test_frobenius_pca_matches_explicit_pca():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(5, 8, 6, generator=g) * torch.tensor([3.0, 2, 1, 0.5, 0.1, 0.05])
    got = ocnna.frobenius_pca(maps)
    for i in range(5):
        x = (maps[i] - maps[i].mean(0)).double()
        u, s, vt = torch.linalg.svd(x, full_matrices=False)
        r = int(np.searchsorted(np.cumsum(s.numpy() ** 2) / (s.numpy() ** 2).sum(), 0.95) + 1)
        proj = x @ vt[:r].T  # the data in the kept principal components
        assert torch.isclose(got[i], torch.linalg.norm(proj), rtol=1e-6)


def test_importance_is_cv_and_selection_keeps_top_percentile():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(30, 1, 7, 7, generator=g) + 0.5
    amp = torch.rand(30, generator=g)[:, None, None, None]
    # filter m's output varies across images with amplitude spread m / 5: CV grows with m
    outs = torch.cat([base * (1 + m / 5 * amp) for m in range(6)], dim=1)
    imp = ocnna.filter_importance(outs, workers=2)
    assert np.all(np.diff(imp) > 0)
    assert ocnna.select(imp, 50) == [3, 4, 5]
    assert ocnna.select(imp, 0) == list(range(6))
    assert ocnna.select(np.zeros(4), 90) == [0, 1, 2, 3]  # ties at the threshold are kept


@pytest.mark.parametrize("name,bits", [("smallcnn", "default"), ("smallcnn", "fp"), ("cifar-smallcnn", "default")])
def test_smallcnn_pruned_shapes_and_rpr(name, bits, tmp_path):
    e = nets.entry(name)
    torch.manual_seed(0)
    m = e.build(e.default_bits() if bits == "default" else e.uniform_bits(32, 32)).eval()
    res = ocnna.ocnna(m, name, _dvar(shape=e.input_shape), k=50)
    for i, c in enumerate(["conv0", "conv1", "conv2"]):
        n = len(res.importance[c])
        assert len(res.keep[c]) == int((np.array(res.importance[c]) >= np.percentile(res.importance[c], 50)).sum())
        assert getattr(m, c).out_channels == len(res.keep[c]) < n
        assert m.features[i][0].num_features == len(res.keep[c])
        if i:
            assert getattr(m, c).in_channels == len(res.keep[f"conv{i - 1}"])
    side = e.input_shape[1] // 8  # three 2x2 max-pools
    assert m.fc0.in_features == len(res.keep["conv2"]) * side * side
    assert res.params_after == surgery.count_params(m) and 0 < res.rpr < 1
    assert np.isclose(res.rpr, res.params_after / res.params_before)
    x = torch.rand(3, *e.input_shape) * 2 - 1
    with torch.no_grad():
        y = m(x)
    assert y.shape == (3, 10)
    artifacts.save_result(tmp_path, m, m_bits(e, bits), {"model": name, "keep": res.keep}, {})
    back = artifacts.load_result(tmp_path).model
    with torch.no_grad():
        assert torch.allclose(back(x), y, atol=1e-5)


def m_bits(e, bits):
    return e.default_bits() if bits == "default" else e.uniform_bits(32, 32)


def test_surgery_keeps_surviving_filters_outputs():
    e = nets.entry("smallcnn")
    torch.manual_seed(1)
    full = e.build(e.uniform_bits(32, 32)).eval()
    pruned = e.build(e.uniform_bits(32, 32)).eval()
    pruned.load_state_dict(full.state_dict())
    keep = [1, 4, 5, 9]
    surgery.apply_keep(pruned, "smallcnn", {"conv0": keep})
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        a = full.features[0](full.conv0(full.input_quant(x)))[:, keep]
        b = pruned.features[0](pruned.conv0(pruned.input_quant(x)))
    assert torch.allclose(a, b, atol=1e-6)


def test_resnet_inner_convs_pruned_residuals_consistent(tmp_path):
    e = nets.entry("resnet20")
    torch.manual_seed(0)
    m = e.build(e.default_bits()).eval()
    res = ocnna.ocnna(m, "resnet20", _dvar(16, (3, 32, 32)), k=60)
    assert len(res.keep) == 9 and all(c.endswith(".conv1") for c in res.keep)
    for c, idx in res.keep.items():
        block = m.get_submodule(c.rpartition(".")[0])
        assert block.conv1.out_channels == block.bn1.num_features == block.conv2.in_channels == len(idx)
        assert block.conv2.out_channels == block.bn2.num_features  # block outputs keep their width
    assert 0 < res.rpr < 1 and res.params_after == surgery.count_params(m)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        y = m(x)
    assert y.shape == (2, 10)
    artifacts.save_result(tmp_path, m, e.default_bits(), {"model": "resnet20", "keep": res.keep}, {})
    with torch.no_grad():
        assert torch.allclose(artifacts.load_result(tmp_path).model(x), y, atol=1e-5)


def test_unsupported_model_is_refused_clearly():
    with pytest.raises(ConfigError, match="not implemented"):
        surgery.sites(torch.nn.Module(), "mobilenetv2")


def test_pruned_arch_entry_counts_the_pruned_macs():
    """The search and the cost models see the pruned shapes (MACs/params measured on the built model)."""
    keep = {"conv0": [0, 3, 5, 7], "conv1": list(range(10)), "conv2": list(range(20))}
    base, pruned = nets.entry("cifar-smallcnn"), nets.arch_entry({"model": "cifar-smallcnn", "keep": keep})
    assert nets.arch_entry({"model": "cifar-smallcnn"}) is base and pruned.name != base.name
    b, p = {s.name: s for s in base.specs}, {s.name: s for s in pruned.specs}
    assert list(b) == list(p)  # same bit variables
    assert p["conv1"].params == 10 * 4 * 9 and b["conv1"].params == 32 * 16 * 9
    assert p["fc0"].macs == 20 * 16 * 10 and b["fc0"].macs == 64 * 16 * 10
    m = pruned.build(pruned.default_bits())
    assert m.conv2.out_channels == 20 and m.fc0.in_features == 320
