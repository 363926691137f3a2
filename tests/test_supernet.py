"""The mixed-precision supernet: shared weights, per-(layer, bit-width) quantizers, sandwich training that
resumes exactly, inheritance into ordinary models, deterministic BatchNorm re-estimation."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bitswarm.boards import load_board
from bitswarm.data import Dataset, Split
from bitswarm.models import get_model
from bitswarm.models.supernet import (
    SupernetRun,
    calibration_images,
    recalibrate_bn,
    sandwich_step,
    train_supernet,
)
from bitswarm.search.oneshot import SupernetSpec, sandwich_plan, supernet_space
from bitswarm.train import Recipe


def _tfc_supernet():
    entry = get_model("tfc")
    spec = SupernetSpec(entry, supernet_space(entry, load_board("pynq-z2")), Recipe(epochs=2, batch_size=64))
    return entry, spec, spec.build()


def _data(n=256, seed=0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randint(0, 40, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    for i, c in enumerate(y.tolist()):  # a class-specific bright bar
        x[i, 0, 2 + 2 * c: 5 + 2 * c, 4:24] = 250
    split = Split(x, y)
    return Dataset("synthetic", split, split, split, "synthetic", "synthetic")


def test_every_configuration_shares_the_weights_and_keeps_its_own_quantizer_scale():
    _, spec, net = _tfc_supernet()
    plan = sandwich_plan(spec.space)
    big, small = net.compose(plan.largest), net.compose(plan.smallest)
    assert big.fc1.weight is small.fc1.weight  # one float weight at a path
    assert big.fc1 is not small.fc1  # but each bit-width is its own unit (its own quantizer)
    assert big.bn1 is small.bn1  # BatchNorm is shared while training (re-estimated per configuration)


def test_a_one_bit_unit_does_not_clamp_the_shared_weights_in_place_even_after_loading_weights():
    _, spec, net = _tfc_supernet()
    net.load_float(get_model("tfc").build(get_model("tfc").uniform_bits(32, 32)).state_dict())
    net.load_state_dict(net.state_dict())  # Brevitas re-creates the quantizers of a layer that loads a state
    with torch.no_grad():
        net.shared["fc1/weight"].mul_(10)  # far outside the 1-bit quantizer's 0.1 clip bound
    before = net.shared["fc1/weight"].detach().clone()
    net.compose(sandwich_plan(spec.space).smallest)(torch.rand(4, 1, 28, 28))
    assert torch.equal(net.shared["fc1/weight"].detach(), before)


def test_a_sandwich_step_lowers_the_loss_of_the_largest_and_the_smallest_configuration():
    _, spec, net = _tfc_supernet()
    plan = sandwich_plan(spec.space, k=1)
    data = _data()
    x, y = data.train.x[:128], data.train.y[:128]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def losses():
        with torch.no_grad():
            return [float(torch.nn.functional.cross_entropy(net.compose(b).train()(x), y))
                    for b in (plan.largest, plan.smallest)]

    g = torch.Generator().manual_seed(0)
    first = losses()
    for _ in range(5):
        sandwich_step(net, plan.configs(g), x, y, opt)
    last = losses()
    assert last[0] < first[0] and last[1] < first[1], (first, last)


def test_training_interrupted_mid_epoch_resumes_to_the_same_weights(tmp_path):
    data = _data()
    _, spec, _ = _tfc_supernet()
    plan = sandwich_plan(spec.space, k=1)
    recipe = Recipe(epochs=2, lr=1e-2, batch_size=64)
    whole = train_supernet(spec.build(), data, plan, SupernetRun(recipe, 0, tmp_path / "a", progress=False))
    run = SupernetRun(recipe, 0, tmp_path / "b", progress=False, max_steps=3)  # stops inside epoch 1
    train_supernet(spec.build(), data, plan, run)
    assert (tmp_path / "b" / "state.pt").exists() and not (tmp_path / "b" / "final.pt").exists()
    resumed = train_supernet(spec.build(), data, plan, replace(run, max_steps=None))
    for (k, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert len((tmp_path / "b" / "epochs.jsonl").read_text().splitlines()) == 2


def test_an_inherited_model_is_an_independent_ordinary_model_with_the_composed_function():
    entry, spec, net = _tfc_supernet()
    bits = sandwich_plan(spec.space).sample(torch.Generator().manual_seed(3))
    model = net.inherit(bits).eval()
    assert type(model) is type(entry.build(bits))
    stateful = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))
                or any(True for _ in m.buffers(recurse=False))]
    assert not set(map(id, stateful)) & set(map(id, net.modules()))  # no parameter or buffer of the supernet's
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), net.compose(bits).eval()(x))
        model.fc1.weight.add_(1.0)
    assert not torch.equal(model.fc1.weight, net.shared["fc1/weight"])


def test_batchnorm_reestimation_is_deterministic_for_a_seed():
    _, spec, net = _tfc_supernet()
    data = _data(512)
    bits = sandwich_plan(spec.space).smallest
    a = recalibrate_bn(net.inherit(bits), calibration_images(data.train, 200, seed=1))
    b = recalibrate_bn(net.inherit(bits), calibration_images(data.train, 200, seed=1))
    c = recalibrate_bn(net.inherit(bits), calibration_images(data.train, 200, seed=2))
    assert torch.equal(a.bn1.running_mean, b.bn1.running_mean)
    assert not torch.equal(a.bn1.running_mean, c.bn1.running_mean)


def test_device_cuda_without_cuda_is_one_line_and_exit_2():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = subprocess.run([sys.executable, "-m", "bitswarm", "supernet", "--model", "tfc", "--device", "cuda"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "cuda" in r.stderr and "no CUDA device" in r.stderr


SHIPPED_SCORES = sorted(Path(__file__).resolve().parents[1].glob("models/pretrained/tfc-super-*/scores.json"))


@pytest.mark.skipif(not SHIPPED_SCORES, reason="no shipped TFC supernet scores")
def test_shipped_tfc_supernet_is_found_by_its_key_and_scores_its_recorded_accuracies(tmp_path):
    from bitswarm.env import read_environment
    from bitswarm.models import BitConfig
    from bitswarm.search.oneshot import open_oneshot
    from bitswarm.workflow import fp_recipe, get_data, train_float

    env = read_environment()
    if env.data_dir is None or not (Path(env.data_dir) / "mnist").exists():
        pytest.skip("needs the real MNIST files (../shared/datasets)")
    env = replace(env, cache_dir=tmp_path / "cache")
    entry = get_model("tfc")
    data = get_data(entry.dataset, None, env)
    fp = train_float(entry, data, 0, fp_recipe(entry.dataset, entry.name), env, progress=False)
    shot = open_oneshot(entry, load_board("pynq-z2"), data, fp.model.state_dict(), env.cache_dir)
    recorded = json.loads(SHIPPED_SCORES[-1].read_text())
    assert shot is not None and shot.ckpt_dir == SHIPPED_SCORES[-1].parent
    assert shot.epochs == recorded["epochs"]
    test = data.test.subset(recorded["test_samples"])
    for row in recorded["configurations"][:3]:
        acc = shot.score(BitConfig.from_dict({"layers": row["bits"]}), test)
        assert abs(acc - row["oneshot_test"]) <= 0.005, (row["name"], acc, row["oneshot_test"])


def test_cli_supernet_then_oneshot_search_and_score_without_training_per_candidate(tmp_path, tiny_mnist_dir,
                                                                                   monkeypatch, capsys):
    """Before a supernet: auto falls back to QAT with one line, oneshot is refused with that line (exit 2).
    After `bitswarm supernet`: the search scores by inheritance (no fine-tune per candidate) and its winner's QAT
    starts from the inherited weights; `score` prints one line per configuration."""
    from bitswarm.cli import main
    from bitswarm.search import problem

    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    data = ["--data-dir", str(tiny_mnist_dir)]
    search = ["search", *data, "--max-avg-bits", "4", "--particles", "3", "--iters", "2", "--val-samples", "500",
              "--final-epochs", "1"]
    assert main([*search, "--fitness", "oneshot", "--run-dir", str(tmp_path / "r0")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bitswarm supernet --model tfc --board pynq-z2" in err
    assert main(["supernet", *data, "--stop-after", "1", "--threads", "1", "--val-samples", "500"]) == 0
    out = capsys.readouterr().out
    assert "supernet trained 1 of 10 epochs (resumable)" in out and "largest" in out

    def no_training(*a, **k):
        raise AssertionError("a candidate was fine-tuned")

    monkeypatch.setattr(problem, "train", no_training)  # the per-candidate QAT (the winner's final QAT is not it)
    assert main([*search, "--run-dir", str(tmp_path / "r")]) == 0, capsys.readouterr().err
    assert "--fitness oneshot (the trained supernet of tfc on pynq-z2" in capsys.readouterr().out
    r = json.loads((tmp_path / "r" / "result.json").read_text())
    assert r["signature"]["fitness"].startswith("oneshot:") and r["best"]["violation"] == 0
    assert 0 < r["final"]["test_acc"] <= 1
    assert main(["compare", *data, "--algos", "random", "--seeds", "1", "--budget", "3", "--max-avg-bits", "4",
                 "--val-samples", "500", "--out", str(tmp_path / "c")]) == 0
    assert "--fitness oneshot (the trained supernet" in capsys.readouterr().out
    sig = json.loads((tmp_path / "c" / "random-s0" / "result.json").read_text())["signature"]
    assert sig["fitness"].startswith("oneshot:")
    assert main(["score", *data, "--bits", "w2a2", "w8a8", "--val-samples", "500"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "one-shot val" in ln]
    assert [ln.split(":")[0] for ln in lines] == ["w2a2", "w8a8"] and all("avg_bits=" in ln for ln in lines)


SHIPPED_TFC_SUPERNET = sorted(Path(__file__).resolve().parents[1].glob("models/pretrained/tfc-super-*/final.pt"))


@pytest.mark.finn
@pytest.mark.skipif(not SHIPPED_TFC_SUPERNET, reason="no shipped TFC supernet")
def test_an_inherited_configuration_with_one_bit_layers_exports_and_its_finn_build_verifies(tmp_path):
    """FINN's w1a1 TFC (1-bit weights and activations, 2-bit input) inherited from the shipped supernet."""
    from bitswarm.flows.finn import build_finn
    from bitswarm.hw.finn_verify import VerifyInputs
    from bitswarm.models.export import export_qonnx
    from bitswarm.models.supernet import load_trained

    entry, spec, _ = _tfc_supernet()
    net = load_trained(spec.build(), SHIPPED_TFC_SUPERNET[-1].parent)
    bits = entry.finn_design_bits(1, 1)
    calib = torch.randint(0, 256, (500, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    model = recalibrate_bn(net.inherit(bits), calib).eval()
    onnx = export_qonnx(model, entry.input_shape, tmp_path / "tfc.onnx").path
    x = torch.rand(64, *entry.input_shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    assert len(set(pred.tolist())) > 1  # not a constant model (the verification would refuse it)

    class Env:  # what build_finn reads of the environment
        cache_dir = tmp_path / "cache"
        vivado = vitis_hls = None

    r = build_finn(onnx, load_board("pynq-z2"), tmp_path / "finn", stop_after="estimates", env=Env(),
                   verify=VerifyInputs(x.numpy(), pred, pred))
    assert r.verification and all(lc["ok"] for lc in r.verification["levels"])
    assert r.verification["accuracy"]["finn_hw"] == r.verification["accuracy"]["qonnx"]
