"""Float training and quantization-aware fine-tuning, cached and resumable.

A run is identified by (model, bit config, data, seed, recipe, initial weights). Its
checkpoint directory holds ``state.pt`` (rewritten atomically after every epoch, so an
interrupted run resumes from the last finished epoch) and ``final.pt`` when done.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from bitswarm.atomic import save_torch
from bitswarm.data import Dataset, Split, normalize
from bitswarm.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    augment: bool = False  # random crop (pad 4) + horizontal flip, for CIFAR
    max_train: int | None = None  # use only the first N training samples (searches)
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9, as the BBPSO-Quantizer paper's §5.3.1)

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def set_seed(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    dx, dy = torch.randint(0, 9, (2,), generator=g).tolist()
    x = padded[:, :, dy:dy + h, dx:dx + w]
    flip = torch.rand(n, generator=g) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu`` or ``cuda``; ``cuda`` without CUDA is refused."""
    if name not in ("auto", "cpu", "cuda"):
        raise ConfigError("--device", "device", f"unknown device {name!r}", "auto, cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device", "device", "cuda asked for but torch sees no CUDA device "
                          f"(torch {torch.__version__})", "auto, cpu, or cuda on a machine with a CUDA GPU")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 1000) -> float:
    """Top-1 accuracy (0..1) on ``split`` (on the model's device)."""
    model.eval()
    dev = model_device(model)
    correct = 0
    for i in range(0, len(split), batch_size):
        out = model(normalize(split.x[i:i + batch_size]).to(dev))
        correct += int((out.argmax(1).cpu() == split.y[i:i + batch_size]).sum())
    return correct / max(1, len(split))


def run_key(model_key: str, bits_key: str, data: Dataset, seed: int, recipe: Recipe, init: str) -> str:
    """``model_key``: the model's content digest (``bitswarm.cachekey.entry_digest``), never its name."""
    blob = json.dumps([model_key, bits_key, data.name, data.fingerprint, seed, recipe.key(), init])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def sign_only_layers(model: nn.Module) -> list[nn.Module]:
    """Layers whose forward uses only the sign of their weights: 1-bit quantizers with a constant scale.

    Brevitas' ``SignedBinaryWeightPerTensorConst`` clips the latent weights in place to its scale
    (0.1). Their loss gradient is tiny (a BatchNorm follows and divides by the large pre-activation
    spread), so weight decay would dominate it and flip signs at random.
    """
    out = []
    for m in model.modules():
        wq = getattr(m, "weight_quant", None)
        if (wq is not None and getattr(wq, "is_quant_enabled", False) and float(wq.bit_width()) == 1
                and not any(True for _ in wq.parameters())):
            out.append(m)
    return out


def sign_only_weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in sign_only_layers(model)]


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """Adam or SGD over every parameter; no weight decay on sign-only weights (as in BNN training)."""
    signs = {id(p) for p in sign_only_weights(model)}
    groups = [{"params": [p for p in model.parameters() if id(p) not in signs]},
              {"params": [p for p in model.parameters() if id(p) in signs], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)


def distill_loss(out: torch.Tensor, y: torch.Tensor, teacher_out: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy on the labels, averaged with the KL divergence to a teacher's outputs when there is one."""
    ce = nn.functional.cross_entropy(out, y)
    if teacher_out is None:
        return ce
    kd = nn.functional.kl_div(out.log_softmax(1), teacher_out.softmax(1), reduction="batchmean")
    return 0.5 * (ce + kd)


def train(model: nn.Module, data: Dataset, recipe: Recipe, seed: int, ckpt_dir: Path | None = None,
          progress: bool = True, desc: str = "train", stop_after: int | None = None,
          teacher: nn.Module | None = None) -> nn.Module:
    """Train ``model`` on ``data.train`` (cached in ``ckpt_dir`` when given). Returns the model.

    ``stop_after`` ends the run after that many epochs in total, leaving ``state.pt`` to resume.
    ``teacher``: a model (in eval mode) whose outputs the student also matches (:func:`distill_loss`).
    """
    final = ckpt_dir / "final.pt" if ckpt_dir else None
    if final is not None and final.exists():
        model.load_state_dict(torch.load(final, weights_only=True))
        return model.eval()
    g = set_seed(seed)
    state_path = ckpt_dir / "state.pt" if ckpt_dir else None
    st = torch.load(state_path, weights_only=False) if state_path is not None and state_path.exists() else None
    if st is not None:  # before the optimizer exists: Brevitas may re-create parameters on load
        model.load_state_dict(st["model"])
    opt = _optimizer(model, recipe)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, recipe.epochs))
    start = 0
    if st is not None:
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        g.set_state(st["rng"])
        start = st["epoch"]
    tr = data.train.subset(recipe.max_train)
    steps = (len(tr) + recipe.batch_size - 1) // recipe.batch_size
    bar = tqdm(total=steps * (recipe.epochs - start), desc=desc, disable=None if progress else True,
               leave=False, mininterval=1.0,
               unit="batch")
    end = recipe.epochs if stop_after is None else min(recipe.epochs, stop_after)
    for epoch in range(start, end):
        t_epoch = time.time()
        model.train()
        perm = torch.randperm(len(tr), generator=g)
        for i in range(0, len(tr), recipe.batch_size):
            idx = perm[i:i + recipe.batch_size]
            x = tr.x[idx]
            if recipe.augment:
                x = _augment(x, g)
            xn = normalize(x)
            with torch.no_grad():
                t_out = teacher.eval()(xn) if teacher is not None else None
            loss = distill_loss(model(xn), tr.y[idx], t_out)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        sched.step()
        if state_path is not None:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            save_torch({"model": model.state_dict(), "opt": opt.state_dict(),
                          "sched": sched.state_dict(), "rng": g.get_state(), "epoch": epoch + 1},
                         state_path)
            with open(ckpt_dir / "epochs.jsonl", "a") as log:
                log.write(json.dumps({"epoch": epoch + 1, "loss": round(loss.item(), 4),
                                      "wall_s": round(time.time() - t_epoch, 1)}) + "\n")
    bar.close()
    if end < recipe.epochs:
        return model.eval()
    if final is not None:
        save_torch(model.state_dict(), final)
        state_path.unlink(missing_ok=True)
    return model.eval()


def load_float_weights(qmodel: nn.Module, state: dict) -> None:
    """Initialise a quantized model from float weights (quantizer parameters start fresh).

    Sign-only (1-bit, constant-scale) weights are scaled so that their mean |w| is the quantizer's
    clip bound: the signs (the layer's function) stay, and most latent weights sit at the bound,
    so one noisy step does not flip them (CNV w1a1 from the float checkpoint, 150 Adam steps at
    1e-3, no decay: 49.7 % validation on 2,000 images vs 43 % unscaled, 42.6 % scaled into the bound).
    """
    own = qmodel.state_dict()
    compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    qmodel.load_state_dict(compatible, strict=False)
    with torch.no_grad():  # sign-only weights: same signs, mean |w| at the quantizer's clip bound
        for m in sign_only_layers(qmodel):
            bound = float(m.quant_weight().scale.max())
            m.weight.mul_(bound / m.weight.abs().mean().clamp_min(1e-12))


#: changes whenever :func:`load_float_weights` changes what a QAT run starts from (part of its cache key)
QAT_INIT_VERSION = "sign-mean-at-bound"
