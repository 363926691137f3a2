"""Filter surgery on Brevitas CNNs: keep given output filters of each conv, shrink what follows.

Supported layouts: CNV-like chains (``conv{i}`` followed by ``features[i]`` = BN, activation[,
pool], the last conv feeding ``fc0`` through a flatten) — ``cnv`` and ``smallcnn``. Each kept
conv is rebuilt with fewer output channels (weights and per-channel weight scales sliced), its
BN is sliced, and the next conv's input channels (or ``fc0``'s input columns, channel-major
after flatten) follow. ResNets are not supported yet (residual additions need the filters of a
whole stage kept together): :func:`conv_chain` raises a ``ConfigError`` for them.
"""

from __future__ import annotations

import torch
from torch import nn

from bitswarm.errors import ConfigError
from bitswarm.models.quant import qconv, qlinear

CHAIN_MODELS = ("cnv", "smallcnn")


def conv_chain(model: nn.Module, model_name: str) -> list[str]:
    """Names of the prunable convs, in order."""
    if model_name not in CHAIN_MODELS:
        raise ConfigError("--model", "model", f"filter pruning of '{model_name}' is not implemented",
                          ", ".join(CHAIN_MODELS))
    return [f"conv{i}" for i in range(len(model.features))]


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
    convs = conv_chain(model, model_name)
    unknown = set(keep) - set(convs)
    if unknown:
        raise ConfigError("arch.json", "keep", f"unknown conv layers {sorted(unknown)}", ", ".join(convs))
    in_idx, last_cout = None, 0
    for i, name in enumerate(convs):
        old = getattr(model, name)
        last_cout = old.out_channels
        out_idx = torch.as_tensor(sorted(keep[name]), dtype=torch.long) if name in keep else None
        if out_idx is not None or in_idx is not None:
            setattr(model, name, _new_conv(old, out_idx, in_idx))
        if out_idx is not None:
            model.features[i][0] = _new_bn(model.features[i][0], out_idx)
        in_idx = out_idx
    if in_idx is not None:
        model.fc0 = _new_linear(model.fc0, last_cout, in_idx)
    return model


def count_params(model: nn.Module) -> int:
    """Parameters of conv, linear and BN layers (quantizer scales not counted)."""
    return sum(p.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.BatchNorm2d |
                                                                   nn.BatchNorm1d) for p in m.parameters(False))
