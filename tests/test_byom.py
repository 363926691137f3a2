"""Bring your own model and data (issue 7): user callables, Brevitas models, folders, .npz."""

from pathlib import Path

import numpy as np
import pytest
import torch

from bitswarm.cli import main
from bitswarm.data import load_dataset
from bitswarm.errors import ConfigError, DataError
from bitswarm.models import get_model
from bitswarm.models.export import export_qonnx
from bitswarm.models.finn_support import UnsupportedForFinnError, check_finn_support

FIX = Path(__file__).parent / "fixtures"
CNN = f"{FIX}/byom_cnn.py:build"


def test_float_user_model_gets_per_layer_bits_by_module_path(tmp_path):
    e = get_model(CNN, dataset="cifar10")
    assert [s.name for s in e.specs] == ["input_quant", "features.0", "features.2", "features.4", "features.6",
                                         "classifier"]
    bits = e.uniform_bits(3, 2)
    net = e.build(bits).train()
    net(torch.rand(8, 3, 32, 32) * 2 - 1)
    net.eval()
    assert net.features[0].quant_weight().int().unique().numel() <= 2 ** 3
    assert net.input_quant.act_quant.bit_width() == 2 and net.features[2].act_quant.bit_width() == 2
    r = export_qonnx(net, e.input_shape, tmp_path / "user.onnx")
    assert r.max_abs_diff < 1e-4
    check_finn_support(net)  # all mappable


def test_module_callable_and_weights(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(FIX))
    base = get_model("byom_cnn:build", dataset="cifar10")
    state = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v
             for k, v in __import__("byom_cnn").build().state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    e = get_model("byom_cnn:build", weights=str(tmp_path / "w.pt"), dataset="cifar10")
    net = e.build(e.uniform_bits(32, 32))
    assert torch.all(net.classifier.weight == 0.5) and len(e.specs) == len(base.specs)
    torch.save({"nope": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="bad.pt: field 'state_dict'"):
        get_model("byom_cnn:build", weights=str(tmp_path / "bad.pt"))
    with pytest.raises(ConfigError, match="has no callable 'nope'"):
        get_model("byom_cnn:nope")


@pytest.mark.parametrize("fn, dataset, n_layers", [("tfc_2w2a", "mnist", 8), ("cnv_1w1a", "cifar10", 18)])
def test_brevitas_bnn_pynq_model_bits_become_variables(tmp_path, fn, dataset, n_layers):
    e = get_model(f"{FIX}/bnn_pynq_models.py:{fn}", dataset=dataset)
    assert len(e.specs) == n_layers
    own = e.default_bits()  # the bits it came with
    assert {b.w for _, b in own.layers if b.w} <= {1, 2}
    new = e.uniform_bits(3, 3)
    net = e.build(new).eval()
    weighted = [s.name for s in e.specs if s.has_weight]
    levels = net.get_submodule(weighted[1]).quant_weight().int().unique().numel()
    assert 2 < levels <= 8
    assert export_qonnx(net, e.input_shape, tmp_path / "b.onnx").max_abs_diff < 1e-3


def test_unmappable_operator_is_named_before_long_work():
    e = get_model(f"{FIX}/byom_cnn.py:build_with_gelu", dataset="cifar10")
    net = e.build(e.default_bits())
    with pytest.raises(UnsupportedForFinnError, match=r"features.2 \(GELU is not supported\), features.6 "):
        check_finn_support(net)
    zoo_fp = get_model("tfc")
    with pytest.raises(UnsupportedForFinnError, match="float weights"):
        check_finn_support(zoo_fp.build(zoo_fp.uniform_bits(32, 32)))


def _npz(path, n=300, shape=(8, 8, 3), test=False):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 50, (n, *shape)).astype(np.uint8)
    x[np.arange(n), y] = 250  # class = which row is bright
    extra = {"x_test": x[:50], "y_test": y[:50]} if test else {}
    np.savez(path, x=x, y=y, **extra)


def test_npz_and_image_folder_datasets(tmp_path):
    _npz(tmp_path / "d.npz")
    d = load_dataset(str(tmp_path / "d.npz"), None)
    assert d.input_shape == (3, 8, 8) and len(d.test) == 60 and len(d.val) == 24 and d.num_classes == 3
    _npz(tmp_path / "t.npz", test=True)
    assert len(load_dataset(str(tmp_path / "t.npz"), None).test) == 50
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 8, 8), np.float32), y=np.zeros(4))
    with pytest.raises(DataError, match="bad.npz: field 'x' has dtype float32; allowed: uint8"):
        load_dataset(str(tmp_path / "bad.npz"), None)
    from PIL import Image

    for split, n in (("train", 6), ("test", 2)):
        for c in ("cat", "dog"):
            (tmp_path / "imgs" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / split / c / f"{i}.png")
    d = load_dataset(str(tmp_path / "imgs"), None)
    assert d.input_shape == (3, 12, 12) and len(d.test) == 4 and d.num_classes == 2
    with pytest.raises(DataError, match="not a dataset; allowed: mnist, cifar10"):
        load_dataset(str(tmp_path / "nothing"), None)


def test_cli_trains_user_model_on_npz(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    _npz(tmp_path / "d.npz", n=400, shape=(32, 32, 3))
    rc = main(["train", "--model", CNN, "--dataset", str(tmp_path / "d.npz"), "--bits", "w4a4",
               "--fp-epochs", "2", "--epochs", "1", "--board", "host"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "test" in out and "features.0:w4" in out
    made = list((tmp_path / "cache" / "checkpoints").iterdir())
    assert len(made) == 2 and all("byom_cnn.py_build-" in p.name for p in made)
    assert not list(FIX.glob("*-fp-*"))  # nothing written next to the user's file
    assert main(["train", "--model", CNN, "--board", "host"]) == 2
    assert "needs a dataset" in capsys.readouterr().err


def test_finn_search_on_unmappable_model_fails_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    _npz(tmp_path / "d.npz", n=100, shape=(32, 32, 3))
    rc = main(["search", "--model", f"{FIX}/byom_cnn.py:build_with_gelu", "--dataset", str(tmp_path / "d.npz"),
               "--cost", "finn", "--max-lut", "20000", "--run-dir", str(tmp_path / "run")])
    assert rc == 2
    assert "FINN cannot map 2 layer(s): features.2 (GELU is not supported)" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()  # no training, no journal
