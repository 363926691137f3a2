"""The three commands end to end on generated MNIST-layout data: prune -> cluster / finetune compose."""

import json

import pytest

from bitswarm.cli import main


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _meta(d):
    return json.loads((d / "meta.json").read_text())


def test_prune_then_finetune_then_cluster(tiny_mnist_dir, cache, capsys):
    common = ["--data-dir", str(tiny_mnist_dir), "--threads", "1"]
    pruned = cache / "pruned"
    assert main(["prune", "--model", "smallcnn", "--from", "float", "--k", "50", "--dvar", "64",
                 "--ft-max-train", "256", "--out", str(pruned), *common]) == 0
    assert 0 < _meta(pruned)["rpr"] < 1 and json.loads((pruned / "arch.json").read_text())["keep"]
    tuned = cache / "tuned"
    assert main(["finetune", "--model", "tfc", "--bits", "w3a8", "--generations", "2", "--fitness-samples", "200",
                 "--out", str(tuned), *common]) == 0
    m = _meta(tuned)
    assert m["method"] == "finetune-evo" and m["fitness_split"] == "val"
    clustered = cache / "clustered"
    assert main(["cluster", "--from", str(tuned), "--init", "kmeans++", "--out", str(clustered), *common]) == 0
    assert _meta(clustered)["start"].startswith(str(tuned))
    assert "written:" in capsys.readouterr().out


def test_bad_source_is_one_clear_error(tiny_mnist_dir, cache, capsys):
    assert main(["cluster", "--from", "nowhere", "--out", str(cache / "x"), "--data-dir", str(tiny_mnist_dir)]) == 2
    assert "--from" in capsys.readouterr().err


def test_prune_cifar_smallcnn_exports_qonnx(tiny_cifar_dir, cache):
    out = cache / "pruned-cifar"
    assert main(["prune", "--model", "cifar-smallcnn", "--from", "ptq", "--bits", "w4a4", "--k", "40",
                 "--dvar", "32", "--ft-max-train", "128", "--export", "--out", str(out),
                 "--data-dir", str(tiny_cifar_dir), "--threads", "1", "--fp-epochs", "1"]) == 0
    keep = json.loads((out / "arch.json").read_text())["keep"]
    assert set(keep) == {"conv0", "conv1", "conv2"} and len(keep["conv2"]) < 64
    assert (out / "model.onnx").stat().st_size > 0
