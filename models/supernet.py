"""A mixed-precision supernet: one set of weights shared by every bit configuration of a space.

The supernet is built from the model's own builder (zoo or user model), so every configuration it
serves is the ordinary Brevitas model that exports to QONNX and FINN:

- **Units.** Each model built for some configuration is cut into *units*: a Brevitas quant layer
  (its weights, its quantizer) or a plain module that holds parameters or buffers (BatchNorm). A unit
  is keyed by ``(path, class, bit-width)``, so each (layer, bit-width) keeps its own quantizer
  parameters (its own scale), while the float weights and biases at a path are one ``Parameter`` tied
  into every unit of that path, and a plain module (BatchNorm) is one module for all configurations.
- **A configuration** is the model built for it with every unit swapped for the supernet's
  (:meth:`Supernet.compose`): training it trains the shared weights. :meth:`Supernet.inherit` gives an
  ordinary, independent model with the composed state (what search, export and final training use).
- **BatchNorm** is shared while training and re-estimated per configuration before it is scored
  (:func:`recalibrate_bn`): the statistics of one configuration are not another's.
- **1-bit weights**: Brevitas' ``SignedBinaryWeightPerTensorConst`` clamps its input in place to its
  scale; in the supernet that input is the shared weight, so the unit's clamp is swapped for the
  out-of-place one (same forward, same straight-through gradient).

:func:`train_supernet` runs the sandwich rule (largest + smallest + k random configurations per
step, the others distilled in place from the largest), resumable within an epoch.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from bitswarm.atomic import save_torch
from bitswarm.data import Split, normalize
from bitswarm.errors import ConfigError
from bitswarm.models.bitconfig import BitConfig
from bitswarm.train import Recipe, _augment, evaluate, model_device

#: changes whenever what a supernet's training does changes (part of its checkpoint key)
SUPERNET_VERSION = "sandwich-inplace-kd-v1"

Sampler = Callable[[torch.Generator], BitConfig]
CPU = torch.device("cpu")


def _is_quant_layer(m: nn.Module) -> bool:
    from brevitas.nn.mixin.base import QuantLayerMixin

    return isinstance(m, QuantLayerMixin)


def _quant_bits(m: nn.Module) -> int | None:
    """A Brevitas layer's bit-width (weights for weight layers, output for activations); None = float."""
    for attr in ("weight_quant", "act_quant", "input_quant"):
        proxy = getattr(m, attr, None)
        if proxy is not None and getattr(proxy, "is_quant_enabled", False):
            return int(proxy.bit_width())
    return None


def units(model: nn.Module) -> dict[str, nn.Module]:
    """The model's units by path: Brevitas quant layers, and plain modules that own parameters or buffers."""
    out: dict[str, nn.Module] = {}

    def walk(prefix: str, mod: nn.Module) -> None:
        for name, child in mod.named_children():
            path = f"{prefix}.{name}" if prefix else name
            own = any(True for _ in child.parameters(recurse=False)) or any(True for _ in child.buffers(recurse=False))
            if _is_quant_layer(child) or own:
                out[path] = child
            else:
                walk(path, child)

    walk("", model)
    return out


def unit_key(path: str, m: nn.Module) -> str:
    bits = _quant_bits(m) if _is_quant_layer(m) else None
    return f"{path.replace('.', '/')}|{type(m).__name__}|{bits}"


def _set_submodule(root: nn.Module, path: str, mod: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    parent._modules[name] = mod


def _out_of_place_clamp(m: nn.Module) -> None:
    """A 1-bit constant-scale weight quantizer clamps its input in place: make it clamp a copy."""
    from brevitas.core.function_wrapper.ops_ste import InplaceTensorClampSte, TensorClampSte

    for sub in m.modules():
        for name, child in list(sub.named_children()):
            if isinstance(child, InplaceTensorClampSte):
                sub._modules[name] = TensorClampSte()


class Supernet(nn.Module):
    """Every configuration of ``basis`` (one per candidate bit-width is enough when each layer's modules
    depend only on its own bits) served by one set of shared weights."""

    def __init__(self, build: Callable[[BitConfig], nn.Module], basis: Sequence[BitConfig]):
        super().__init__()
        self._build = build
        self.units = nn.ModuleDict()
        self.shared = nn.ParameterDict()
        for bits in basis:
            self._absorb(build(bits))
        self._composed: OrderedDict[str, nn.Module] = OrderedDict()

    def _absorb(self, model: nn.Module) -> None:
        for path, mod in units(model).items():
            key = unit_key(path, mod)
            if key in self.units:
                continue
            for pname in ("weight", "bias"):
                p = mod._parameters.get(pname) if _is_quant_layer(mod) else None
                if p is None:
                    continue
                skey = f"{path}.{pname}".replace(".", "/")
                if skey in self.shared:
                    mod._parameters[pname] = self.shared[skey]
                else:
                    self.shared[skey] = p
            _out_of_place_clamp(mod)
            self.units[key] = mod

    def load_float(self, state: dict) -> None:
        """Shared weights, biases and BatchNorm from a float checkpoint (shape-compatible keys only)."""
        for key, mod in self.units.items():
            path = key.split("|")[0].replace("/", ".")
            own = mod.state_dict()
            sub = {k[len(path) + 1:]: v for k, v in state.items() if k.startswith(path + ".")}
            mod.load_state_dict({k: v for k, v in sub.items() if k in own and own[k].shape == v.shape}, strict=False)
        self._clamps_out_of_place()

    def _clamps_out_of_place(self) -> None:
        """Brevitas re-creates a weight quantizer when its layer loads a state (its 1-bit clamp in place again)."""
        for mod in self.units.values():
            _out_of_place_clamp(mod)

    def compose(self, bits: BitConfig) -> nn.Module:
        """The configuration's model made of the supernet's units (training it trains the supernet)."""
        k = bits.key()
        if k in self._composed:
            self._composed.move_to_end(k)
            return self._composed[k]
        model = self._build(bits)
        for path, mod in units(model).items():
            key = unit_key(path, mod)
            if key not in self.units:
                raise ConfigError("bit config", path, f"{key.split('|', 1)[1]} is outside the supernet's space",
                                  "the bit-widths the supernet was trained over")
            _set_submodule(model, path, self.units[key])
        self._composed[k] = model
        while len(self._composed) > 8:
            self._composed.popitem(last=False)
        return model

    def inherit(self, bits: BitConfig) -> nn.Module:
        """An ordinary (independent) model of ``bits`` carrying the supernet's weights and quantizers."""
        composed = self.compose(bits)
        model = self._build(bits).to(model_device(composed))
        load_state(model, composed.state_dict())
        return model

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = load_state(self, state_dict, strict, assign, super().load_state_dict)
        self._clamps_out_of_place()
        return result

    def __getstate__(self):  # the composed cache holds views; it is rebuilt on demand
        state = self.__dict__.copy()
        state["_composed"] = OrderedDict()
        return state


def load_state(model: nn.Module, state: dict, strict: bool = True, assign: bool = False, load=None):
    """``load_state_dict`` where a quantizer that never ran may lack its scale: Brevitas leaves the ``value`` of a
    scale that is still to be initialised from statistics out of the state dict (it initialises on first use)."""
    result = (load or model.load_state_dict)(state, strict=False, assign=assign)
    bad = [k for k in result.missing_keys if not k.endswith("scaling_impl.value")] + list(result.unexpected_keys)
    if strict and bad:
        raise RuntimeError(f"{type(model).__name__}: state dict does not match: {', '.join(bad[:5])}")
    return result


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> nn.Module:
    """Re-estimate every BatchNorm's statistics on ``x`` (raw images), the rest of the model in eval mode.

    Cumulative averages (``momentum=None``) over fixed batches: the same images give the same statistics."""
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    dev = model_device(model)
    for i in range(0, len(x), batch_size):
        model(normalize(x[i:i + batch_size]).to(dev))
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
        m.eval()
    return model


def calibration_images(train: Split, n: int, seed: int) -> torch.Tensor:
    """``n`` training images drawn by ``seed`` (the same for every configuration scored)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=g)[:n]
    return train.x[idx]


@dataclass(frozen=True)
class SandwichPlan:
    """What one training step runs: the largest configuration (trained on the labels), the smallest and
    ``k`` random ones (distilled in place from the largest's outputs)."""

    largest: BitConfig
    smallest: BitConfig
    sample: Sampler
    k: int = 2

    def configs(self, g: torch.Generator) -> list[BitConfig]:
        return [self.largest, self.smallest] + [self.sample(g) for _ in range(self.k)]


def sandwich_step(net: Supernet, configs: Sequence[BitConfig], x: torch.Tensor, y: torch.Tensor,
                  opt: torch.optim.Optimizer) -> list[float]:
    """One optimizer step over ``configs`` (the first is the teacher); returns each configuration's loss."""
    opt.zero_grad(set_to_none=True)
    teacher = None
    losses = []
    for bits in configs:
        out = net.compose(bits).train()(x)
        if teacher is None:
            loss = nn.functional.cross_entropy(out, y)
            teacher = out.detach().softmax(1)
        else:
            loss = nn.functional.kl_div(out.log_softmax(1), teacher, reduction="batchmean")
        loss.backward()
        losses.append(loss.item())
    opt.step()
    return losses


def _optimizer(net: Supernet, recipe: Recipe) -> torch.optim.Optimizer:
    """Over the parameters in name order: Brevitas re-registers some on load, and the optimizer's saved state is
    matched to parameters by position."""
    params = [p for _, p in sorted(net.named_parameters(), key=lambda kv: kv[0])]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


@dataclass(frozen=True)
class SupernetRun:
    """Where and how a supernet trains: ``ckpt_dir`` holds ``state.pt`` (every ``save_every_s`` seconds and at
    each epoch's end, resumable mid-epoch), ``epochs.jsonl`` and ``final.pt`` when done."""

    recipe: Recipe
    seed: int
    ckpt_dir: Path | None
    device: torch.device = CPU
    save_every_s: float = 600.0
    progress: bool = True
    stop_after: int | None = None  # epochs in total, then return (``state.pt`` kept)
    max_steps: int | None = None  # steps in this call, then save and return (tests)


def train_supernet(net: Supernet, data, plan: SandwichPlan, run: SupernetRun) -> Supernet:
    """Sandwich-rule training of ``net`` on ``data.train``; resumes from ``run.ckpt_dir``."""
    final = run.ckpt_dir / "final.pt" if run.ckpt_dir else None
    if final is not None and final.exists():
        net.load_state_dict(torch.load(final, weights_only=True, map_location=run.device))
        return net.eval()
    net.to(run.device)
    g = torch.Generator().manual_seed(run.seed)
    torch.manual_seed(run.seed)
    st = _load_state(net, run)  # before the optimizer exists: Brevitas re-creates some parameters on load
    opt = _optimizer(net, run.recipe)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, run.recipe.epochs))
    pos = _resume(st, opt, sched, g)
    tr = data.train.subset(run.recipe.max_train)
    bs = run.recipe.batch_size
    steps = (len(tr) + bs - 1) // bs
    end = run.recipe.epochs if run.stop_after is None else min(run.recipe.epochs, run.stop_after)
    bar = tqdm(total=steps * (end - pos["epoch"]) - pos["step"], desc="supernet", unit="step", leave=False,
               mininterval=2.0, disable=None if run.progress else True)
    done_here, last_save = 0, time.time()
    for epoch in range(pos["epoch"], end):
        t0 = time.time() - pos.get("epoch_s", 0.0)
        g_epoch = pos["g_epoch"] if pos["step"] else g.get_state()
        pg = torch.Generator()
        pg.set_state(g_epoch)
        perm = torch.randperm(len(tr), generator=pg)
        if not pos["step"]:  # a fresh epoch: the sampling stream continues after the permutation's draw
            g.set_state(pg.get_state())
            pos["sums"] = [0.0, 0.0, 0]
        for step in range(pos["step"], steps):
            idx = perm[step * bs:(step + 1) * bs]
            x = _augment(tr.x[idx], g) if run.recipe.augment else tr.x[idx]
            losses = sandwich_step(net, plan.configs(g), normalize(x).to(run.device), tr.y[idx].to(run.device), opt)
            pos["sums"] = [pos["sums"][0] + losses[0], pos["sums"][1] + losses[1], pos["sums"][2] + 1]
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, ce=f"{losses[0]:.3f}", kd_min=f"{losses[1]:.3f}")
            done_here += 1
            pos.update(epoch=epoch, step=step + 1, g_epoch=g_epoch, epoch_s=time.time() - t0)
            if run.max_steps is not None and done_here >= run.max_steps:
                _save(net, opt, sched, g, pos, run)
                bar.close()
                return net
            if time.time() - last_save > run.save_every_s:
                _save(net, opt, sched, g, pos, run)
                last_save = time.time()
        sched.step()
        _log_epoch(run, epoch, pos["sums"], time.time() - t0)
        pos.update(epoch=epoch + 1, step=0, epoch_s=0.0)
        _save(net, opt, sched, g, pos, run)
        last_save = time.time()
    bar.close()
    if end == run.recipe.epochs and final is not None:
        save_torch(net.state_dict(), final)
        (run.ckpt_dir / "state.pt").unlink(missing_ok=True)
    return net.eval()


def _load_state(net: Supernet, run: SupernetRun) -> dict | None:
    path = run.ckpt_dir / "state.pt" if run.ckpt_dir else None
    if path is None or not path.exists():
        return None
    st = torch.load(path, weights_only=False, map_location=run.device)
    net.load_state_dict(st["model"])
    _restore_runtime_stats(net, st.get("runtime_stats", {}))
    return st


def _resume(st: dict | None, opt, sched, g) -> dict:
    if st is None:
        return {"epoch": 0, "step": 0, "g_epoch": None, "sums": [0.0, 0.0, 0], "epoch_s": 0.0}
    opt.load_state_dict(st["opt"])
    sched.load_state_dict(st["sched"])
    g.set_state(st["rng"])
    return dict(st["pos"])


def _runtime_stats(net: nn.Module) -> dict:
    """Activation scales still collecting statistics (Brevitas' runtime-stats scaling): their step counter and
    running buffer, which Brevitas' own state dict folds into a final scale (a resumed run would stop collecting)."""
    return {name: (m.counter, m.buffer.detach().clone()) for name, m in net.named_modules()
            if hasattr(m, "collect_stats_steps") and isinstance(getattr(m, "buffer", None), torch.Tensor)
            and m.counter <= m.collect_stats_steps}


@torch.no_grad()
def _restore_runtime_stats(net: nn.Module, saved: dict) -> None:
    for name, (counter, buffer) in saved.items():
        m = net.get_submodule(name)
        m.counter = counter
        m.buffer.copy_(buffer)
        m.value.fill_(1.0)  # its initial value: the statistics are multiplied into it when collection ends


def _save(net, opt, sched, g, pos: dict, run: SupernetRun) -> None:
    if run.ckpt_dir is None:
        return
    run.ckpt_dir.mkdir(parents=True, exist_ok=True)
    save_torch({"model": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "rng": g.get_state(), "pos": dict(pos), "runtime_stats": _runtime_stats(net)},
               run.ckpt_dir / "state.pt")


def _log_epoch(run: SupernetRun, epoch: int, sums, wall_s: float) -> None:
    if run.ckpt_dir is None:
        return
    run.ckpt_dir.mkdir(parents=True, exist_ok=True)
    n = max(1, sums[2])
    with open(run.ckpt_dir / "epochs.jsonl", "a") as log:
        log.write(json.dumps({"epoch": epoch + 1, "ce_largest": round(sums[0] / n, 4),
                              "kd_smallest": round(sums[1] / n, 4), "wall_s": round(wall_s, 1)}) + "\n")


def trained_epochs(ckpt_dir: Path) -> int | None:
    """How far the supernet in ``ckpt_dir`` trained (None: not at all): its full recipe when ``final.pt``
    exists, else the epochs ``epochs.jsonl`` logged."""
    log = ckpt_dir / "epochs.jsonl"
    if not (ckpt_dir / "final.pt").exists() and not (ckpt_dir / "state.pt").exists():
        return None
    return len(log.read_text().splitlines()) if log.exists() else 0


def load_trained(net: Supernet, ckpt_dir: Path, device: torch.device = CPU) -> Supernet:
    """The latest weights in ``ckpt_dir``: ``final.pt``, else the resumable ``state.pt``."""
    final = ckpt_dir / "final.pt"
    if final.exists():
        net.load_state_dict(torch.load(final, weights_only=True, map_location=device))
    else:
        net.load_state_dict(torch.load(ckpt_dir / "state.pt", weights_only=False, map_location=device)["model"])
    return net.to(device).eval()


def score(net: Supernet, bits: BitConfig, calib: torch.Tensor, split: Split) -> float:
    """One-shot accuracy: inherit ``bits``, re-estimate BatchNorm on ``calib``, validate on ``split``."""
    return evaluate(recalibrate_bn(net.inherit(bits), calib), split)
