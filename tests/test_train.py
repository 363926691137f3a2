import pytest
import torch

import bitswarm.train as T
from bitswarm.data import load_dataset
from bitswarm.models import get_model
from bitswarm.train import Recipe, evaluate, load_float_weights, train


def test_tfc_learns_and_qat_keeps_it(tiny_mnist_dir):
    data = load_dataset("mnist", tiny_mnist_dir)
    e = get_model("tfc")
    fp = train(e.build(e.uniform_bits(32, 32)), data, Recipe(epochs=2, lr=3e-3), seed=0, progress=False)
    assert evaluate(fp, data.test) > 0.9
    q = e.build(e.uniform_bits(2, 2))
    load_float_weights(q, fp.state_dict())
    q = train(q, data, Recipe(epochs=1, lr=1e-3), seed=0, progress=False)
    assert evaluate(q, data.test) > 0.8


def test_interrupted_training_resumes_to_same_weights(tiny_mnist_dir, tmp_path, monkeypatch):
    data = load_dataset("mnist", tiny_mnist_dir)
    e = get_model("tfc")
    r = Recipe(epochs=3, lr=1e-3, batch_size=100)
    # 4-bit weights (learned scales that Brevitas re-creates on load); float activations, because
    # Brevitas' activation statistics of the first 300 steps are not part of a checkpoint
    build = lambda: (torch.manual_seed(1), e.build(e.uniform_bits(4, 32)))[1]
    ref = train(build(), data, r, seed=1, ckpt_dir=tmp_path / "a", progress=False)

    real_save, calls = T.save_torch, []

    def save_then_die(obj, path):
        real_save(obj, path)
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed right after epoch 2 was checkpointed

    monkeypatch.setattr(T, "save_torch", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(build(), data, r, seed=1, ckpt_dir=tmp_path / "b", progress=False)
    monkeypatch.setattr(T, "save_torch", real_save)
    assert torch.load(tmp_path / "b" / "state.pt", weights_only=False)["epoch"] == 2
    starts = []
    real_tqdm = T.tqdm
    monkeypatch.setattr(T, "tqdm", lambda total, **kw: (starts.append(total), real_tqdm(total=total, **kw))[1])
    resumed = train(build(), data, r, seed=1, ckpt_dir=tmp_path / "b", progress=False)
    assert starts == [10]  # only the third epoch (10 batches of 100) was run again
    assert (tmp_path / "b" / "final.pt").exists() and not (tmp_path / "b" / "state.pt").exists()
    assert evaluate(resumed, data.test) > 0.5
    pairs = zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True)
    differ = [k for (k, v), w in pairs if not torch.allclose(v, w, atol=1e-6)]
    assert not differ, f"resumed run differs from the uninterrupted one in {differ[:3]}"
    # a finished run is served from its checkpoint
    again = train(build(), data, r, seed=1, ckpt_dir=tmp_path / "b", progress=False)
    assert torch.equal(again.fc0.weight, resumed.fc0.weight)


def test_sign_only_weights_start_at_their_bound_without_decay():
    """1-bit constant-scale weights: the QAT init keeps the function, and no weight decay touches them."""
    e = get_model("tfc")
    torch.manual_seed(0)
    fp = e.build(e.uniform_bits(32, 32))
    with torch.no_grad():
        fp.fc0.weight.mul_(0.01)  # float weights far below one optimizer step
    bits = e.uniform_bits(1, 2)
    q = e.build(bits)
    load_float_weights(q, fp.state_dict())
    signs = T.sign_only_weights(q)
    saturated = [float((w.abs() >= 0.1 - 1e-6).float().mean()) for w in signs]  # Brevitas clips at 0.1
    assert len(signs) == 4 and all(0.3 < f < 0.9 for f in saturated), saturated
    assert torch.equal(torch.sign(q.fc0.weight), torch.sign(fp.fc0.weight))  # same binarised weights
    assert torch.equal(torch.sign(q.fc0.quant_weight().value), torch.sign(fp.fc0.weight))
    opt = T._optimizer(q, Recipe(weight_decay=5e-4))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert not decayed & {id(w) for w in signs}
    assert len(decayed) == sum(1 for _ in q.parameters()) - len(signs)
