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


def _prune_cifar(data_dir, out):
    assert main(["prune", "--model", "cifar-smallcnn", "--from", "ptq", "--bits", "w4a4", "--k", "40",
                 "--dvar", "32", "--ft-max-train", "128", "--export", "--out", str(out),
                 "--data-dir", str(data_dir), "--threads", "1", "--fp-epochs", "1"]) == 0
    return json.loads((out / "arch.json").read_text())["keep"]


def test_prune_cifar_smallcnn_exports_qonnx(tiny_cifar_dir, cache):
    keep = _prune_cifar(tiny_cifar_dir, cache / "pruned-cifar")
    assert set(keep) == {"conv0", "conv1", "conv2"} and len(keep["conv2"]) < 64
    assert (cache / "pruned-cifar" / "model.onnx").stat().st_size > 0


@pytest.mark.finn
def test_pruned_model_deploys_through_finn(tiny_cifar_dir, cache):
    """A compression command's export goes through `bitswarm deploy --qonnx` like any other model."""
    keep = _prune_cifar(tiny_cifar_dir, cache / "pruned")
    assert main(["deploy", "--qonnx", str(cache / "pruned" / "model.onnx"), "--model", "cifar-smallcnn",
                 "--board", "pynq-z2", "--no-tvm", "--out", str(cache / "deploy"), "--run-id", "p",
                 "--data-dir", str(tiny_cifar_dir), "--threads", "1"]) == 0
    summary = json.loads((cache / "deploy" / "pynq-z2" / "p" / "summary.json").read_text())
    assert summary["finn"]["total"]["lut"] > 0 and "Vivado" in summary["finn"]["missing_tool"]
    import onnx

    g = onnx.load(cache / "deploy" / "pynq-z2" / "p" / "model.qonnx.onnx").graph
    init = {i.name: i.dims for i in g.initializer}
    convs = [n for n in g.node if n.op_type == "Conv"]
    # the deployed graph is the pruned one: conv i computes len(keep[f"conv{i}"]) channels
    assert len(convs) == 3
    for i, n in enumerate(convs):
        w = next(x for x in g.node if n.input[1] in x.output).input[0] if n.input[1] not in init else n.input[1]
        assert init[w][0] == len(keep[f"conv{i}"])


def test_prune_then_search_bits_then_finetune_then_export(tiny_mnist_dir, cache):
    """The issue's chain: prune -> search bits (on the pruned architecture) -> fine-tune -> export."""
    common = ["--data-dir", str(tiny_mnist_dir), "--threads", "1"]
    pruned = cache / "pruned"
    assert main(["prune", "--model", "smallcnn", "--from", "float", "--k", "50", "--dvar", "64", "--fp-epochs", "1",
                 "--ft-max-train", "256", "--out", str(pruned), *common]) == 0
    keep = json.loads((pruned / "arch.json").read_text())["keep"]
    run = cache / "search"
    assert main(["search", "--from", str(pruned), "--max-avg-bits", "4", "--cost", "bitops", "--particles", "2",
                 "--iters", "1", "--eval-epochs", "1", "--eval-train-samples", "256", "--val-samples", "200",
                 "--final-epochs", "1", "--workers", "1", "--run-dir", str(run), *common]) == 0
    winner = run / "winner"
    assert json.loads((winner / "arch.json").read_text())["keep"] == keep  # the search kept the pruned shapes
    result = json.loads((run / "result.json").read_text())
    assert result["best"]["cost"]["avg_bits"] <= 4
    assert _meta(winner)["method"] == "search" and _meta(winner)["start"].startswith(str(pruned))
    tuned = cache / "tuned"
    assert main(["finetune", "--from", str(winner), "--generations", "1", "--fitness-samples", "100", "--export",
                 "--out", str(tuned), *common]) == 0
    from bitswarm.models import BitConfig

    assert BitConfig.load(tuned / "bits.yaml").to_dict() == BitConfig.load(winner / "bits.yaml").to_dict()
    assert (tuned / "model.onnx").exists()


@pytest.mark.parametrize("command, defaults", [("prune", "PRUNE_DEFAULTS"), ("cluster", "CLUSTER_DEFAULTS"),
                                               ("finetune", "FINETUNE_DEFAULTS")])
def test_each_command_takes_its_stage_defaults_as_the_flow_does(command, defaults):
    """One set of defaults per compression stage: the command's flags and the flow's step read the same."""
    from bitswarm.cli import build_parser
    from bitswarm.search.compress import stages

    args = vars(build_parser().parse_args([command, "--out", "x"]))
    assert {k: args[k] for k in getattr(stages, defaults)} == getattr(stages, defaults)
