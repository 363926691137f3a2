"""The float checkpoints shipped in models/pretrained load from a fresh clone and are what `train_float`
starts from (no retraining), at their recorded accuracy."""

import json
from pathlib import Path

import pytest
import torch

from bitswarm.env import Environment, read_environment
from bitswarm.models import get_model
from bitswarm.train import evaluate
from bitswarm.workflow import PRETRAINED_DIR, float_run_dir, fp_recipe, get_data, train_float


def _no_training(model, data, recipe, seed, ckpt_dir, *a, **k):
    """``train`` as the shipped checkpoint needs it: load ``final.pt``, never a training step."""
    assert (ckpt_dir / "final.pt").exists(), "the shipped model would be retrained"
    model.load_state_dict(torch.load(ckpt_dir / "final.pt", weights_only=True))
    return model.eval()


DATA = read_environment().data_dir  # the Makefile's ../shared/datasets (the real MNIST)


@pytest.mark.parametrize("model,folder,n", [("tfc", "mnist", 2000), ("cnv", "cifar10-jpeg", 1000)])
def test_shipped_model_is_found_by_its_content_key_and_reaches_its_recorded_accuracy(model, folder, n, tmp_path,
                                                                                   monkeypatch):
    if DATA is None or not (Path(DATA) / folder).exists():
        pytest.skip(f"needs the real {folder} files (../shared/datasets)")
    env = Environment(data_dir=Path(DATA), cache_dir=tmp_path / "cache", vivado=None, vitis_hls=None,
                      ray_address=None)
    entry = get_model(model)
    data = get_data(entry.dataset, None, env)
    recipe = fp_recipe(entry.dataset, entry.name)
    shipped = float_run_dir(entry, data, 0, recipe, PRETRAINED_DIR)
    assert (shipped / "final.pt").exists(), f"no shipped checkpoint under its key {shipped.name}"
    monkeypatch.setattr("bitswarm.workflow.train", _no_training)
    fp = train_float(entry, data, 0, recipe, env, progress=False)
    assert fp.ckpt_dir == shipped and not (tmp_path / "cache" / "checkpoints").exists()
    meta = json.loads((shipped / "meta.json").read_text())
    acc = evaluate(fp.model, data.test.subset(n))
    assert acc >= meta["test_acc"] - 0.03, (acc, meta["test_acc"])


def test_shipped_cnv_run_resumes_from_its_committed_state():
    """The CNV float run spans sessions: its latest epoch is committed and loads into the zoo CNV."""
    runs = sorted(PRETRAINED_DIR.glob("cnv-fp-*"))
    assert runs, "no CNV float run in models/pretrained"
    run = runs[-1]
    entry = get_model("cnv")
    model = entry.build(entry.uniform_bits(32, 32))
    final = run / "final.pt"
    state = torch.load(final, weights_only=True) if final.exists() else torch.load(run / "state.pt")["model"]
    model.load_state_dict(state)
    epochs = [json.loads(line)["epoch"] for line in (run / "epochs.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, len(epochs) + 1))
    if not final.exists():
        assert torch.load(run / "state.pt")["epoch"] == epochs[-1]


def test_reference_designs_are_shown_only_for_the_same_model_data_recipe_and_start(tiny_mnist_dir, tmp_path,
                                                                                     monkeypatch):
    from dataclasses import replace

    import bitswarm.workflow as W
    from bitswarm.data import load_dataset

    monkeypatch.setattr(W, "PRETRAINED_DIR", tmp_path)
    data, e = load_dataset("mnist", tiny_mnist_dir), get_model("tfc")
    q, f = W.qat_recipe("mnist"), W.fp_recipe("mnist")
    assert W.reference_designs(e, data, q, f) == {}
    key = W.reference_key(e, data, q, f)
    (tmp_path / "tfc-finn-designs.json").write_text(json.dumps({**key, "designs": {"w1a1": {"test_acc": [0.9]}}}))
    assert W.reference_designs(e, data, q, f)["w1a1"]["test_acc"] == [0.9]
    assert W.reference_designs(e, data, replace(q, epochs=1), f) == {}  # another QAT recipe
    assert W.reference_designs(e, data, q, replace(f, epochs=1)) == {}  # another float start
    assert W.reference_designs(get_model("cnv"), data, q, f) == {}  # no file for that model


CNV_DESIGNS = Path(__file__).parent.parent / "bench" / "results" / "cnv-uniform"


@pytest.mark.parametrize("run", sorted(p.name for p in CNV_DESIGNS.glob("*-s0") if (p / "final.pt").exists()))
def test_committed_cnv_design_checkpoints_load_and_reach_their_recorded_accuracy(run):
    """Issue 15's designs (uniform and searched; seed 0 is committed): the shipped reference file agrees with
    the runs, and each checkpoint reaches its recorded test accuracy on a test subset."""
    if DATA is None or not (Path(DATA) / "cifar10-jpeg").exists():
        pytest.skip("needs the CIFAR-10 JPEG copy (../shared/datasets)")
    import sys

    sys.path.insert(0, str(CNV_DESIGNS.parent.parent))
    from cnv_uniform import design_bits

    result = json.loads((CNV_DESIGNS / run / "result.json").read_text())
    entry = get_model("cnv")
    spec = result["design"] if result["design"].startswith("w") else \
        f"{result['design']}={CNV_DESIGNS / (result['design'] + '.bits.yaml')}"
    bits = design_bits(entry, spec)
    assert bits.short() == result["bits"]
    model = entry.build(bits)
    model.load_state_dict(torch.load(CNV_DESIGNS / run / "final.pt", weights_only=True))
    data = get_data("cifar10", None, read_environment())
    acc = evaluate(model, data.test.subset(1000))
    assert abs(acc - result["test_acc"]) < 0.04, (acc, result["test_acc"])
    ref = json.loads((PRETRAINED_DIR / "cnv-finn-designs.json").read_text())["designs"]
    if result["design"] in ref:
        assert result["test_acc"] == ref[result["design"]]["test_acc"][ref[result["design"]]["seeds"].index(0)]
