"""Filter surgery on Brevitas CNNs: keep given output filters of each conv, shrink what follows.

A *prune site* is a conv whose output filters may be dropped, with the BN and activation that
follow it and the one layer consuming its output:

* CNV-like chains (``cnv``, ``smallcnn``, ``cifar-smallcnn``): ``conv{i}`` -> ``features[i]`` (BN, activation
  [, pool]) -> ``conv{i+1}``, the last one -> ``fc0`` through a channel-major flatten;
* ResNets (``resnet20/32/56``): the *inner* conv of every basic block, ``layer{s}.{b}.conv1`` ->
  ``bn1``, ``act1`` -> ``conv2``. The block outputs (``conv2``, shortcut, ``conv0``) keep all
  their channels, so every residual addition stays shape-consistent (the usual scheme for
  pruning ResNets; pruning stage widths would need one kept set per stage — not done).

Each pruned conv is rebuilt with fewer output channels (weights and per-channel weight scales
sliced), its BN is sliced, and the consumer's input channels (or ``fc0``'s input columns)
follow. New modules copy the old module's train/eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bitswarm.errors import ConfigError
from bitswarm.models.quant import qconv, qlinear

CHAIN_MODELS = ("cnv", "smallcnn", "cifar-smallcnn")
RESNETS = ("resnet20", "resnet32", "resnet56")


@dataclass(frozen=True)
class Site:
    conv: str  # dotted module paths
    bn: str
    act: str  # its output is what OCNNA scores
    consumer: str


def sites(model: nn.Module, model_name: str) -> list[Site]:
    """The prunable convs of ``model``, in forward order."""
    if model_name in CHAIN_MODELS:
        n = len(model.features)
        return [Site(f"conv{i}", f"features.{i}.0", f"features.{i}.1", f"conv{i + 1}" if i + 1 < n else "fc0")
                for i in range(n)]
    if model_name in RESNETS:
        out = []
        for s in (1, 2, 3):
            for b in range(len(getattr(model, f"layer{s}"))):
                p = f"layer{s}.{b}"
                out.append(Site(f"{p}.conv1", f"{p}.bn1", f"{p}.act1", f"{p}.conv2"))
        return out
    raise ConfigError("--model", "model", f"filter pruning of '{model_name}' is not implemented",
                      ", ".join(CHAIN_MODELS + RESNETS))


def conv_chain(model: nn.Module, model_name: str) -> list[str]:
    """Names of the prunable convs, in order."""
    return [s.conv for s in sites(model, model_name)]


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def _w_bits(m: nn.Module) -> int:
    return int(m.weight_quant.bit_width()) if m.weight_quant.is_quant_enabled else 32


def _slice_state(old: nn.Module, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> dict:
    """The state dict of ``old`` with output rows ``out_idx`` and input columns ``in_idx``."""
    cout = old.weight.shape[0]
    state = {}
    for k, v in old.state_dict().items():
        if out_idx is not None and v.dim() >= 1 and v.shape[0] == cout and (k == "weight" or "scaling" in k
                                                                              or k == "bias"):
            v = v[out_idx]
        if in_idx is not None and k == "weight":
            v = v[:, in_idx]
        state[k] = v.clone()
    return state


@torch.no_grad()
def _new_conv(old: nn.Conv2d, out_idx, in_idx) -> nn.Module:
    if old.weight_quant.is_quant_enabled:
        old.quant_weight()  # make lazy scales concrete
    cout = len(out_idx) if out_idx is not None else old.out_channels
    cin = len(in_idx) if in_idx is not None else old.in_channels
    new = qconv(cin, cout, old.kernel_size[0], _w_bits(old), old.stride[0], old.padding[0], old.groups)
    new.load_state_dict(_slice_state(old, out_idx, in_idx))
    return new.train(old.training)


@torch.no_grad()
def _new_bn(old: nn.BatchNorm2d, idx) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(idx), eps=old.eps, momentum=old.momentum)
    for k in ("weight", "bias", "running_mean", "running_var"):
        getattr(new, k).copy_(getattr(old, k)[idx])
    new.num_batches_tracked.copy_(old.num_batches_tracked)
    return new.train(old.training)


@torch.no_grad()
def _new_linear(old: nn.Module, channels: int, idx) -> nn.Module:
    if old.weight_quant.is_quant_enabled:
        old.quant_weight()
    spatial = old.in_features // channels
    cols = (idx[:, None] * spatial + torch.arange(spatial)[None]).reshape(-1)
    new = qlinear(len(cols), old.out_features, _w_bits(old), bias=old.bias is not None)
    new.load_state_dict(_slice_state(old, None, cols))
    return new.train(old.training)


def apply_keep(model: nn.Module, model_name: str, keep: dict[str, list[int]]) -> nn.Module:
    """Keep only filters ``keep[conv]`` (sorted indices) of each listed conv; in place."""
    all_sites = sites(model, model_name)
    unknown = set(keep) - {s.conv for s in all_sites}
    if unknown:
        raise ConfigError("arch.json", "keep", f"unknown conv layers {sorted(unknown)}",
                          ", ".join(s.conv for s in all_sites))
    for site in all_sites:
        if site.conv not in keep:
            continue
        idx = torch.as_tensor(sorted(keep[site.conv]), dtype=torch.long)
        conv = model.get_submodule(site.conv)
        channels = conv.out_channels
        _set(model, site.conv, _new_conv(conv, idx, None))
        _set(model, site.bn, _new_bn(model.get_submodule(site.bn), idx))
        consumer = model.get_submodule(site.consumer)
        if isinstance(consumer, nn.Conv2d):
            _set(model, site.consumer, _new_conv(consumer, None, idx))
        else:
            _set(model, site.consumer, _new_linear(consumer, channels, idx))
    return model


def count_params(model: nn.Module) -> int:
    """Parameters of conv, linear and BN layers (quantizer scales not counted)."""
    return sum(p.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.BatchNorm2d |
                                                                   nn.BatchNorm1d) for p in m.parameters(False))
