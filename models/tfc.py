"""FINN's TFC: the tiny fully-connected MNIST network (784-64-64-64-10) of Brevitas' bnn_pynq."""

from __future__ import annotations

import torch
from torch import nn

from bitswarm.models.bitconfig import BitConfig, LayerSpec
from bitswarm.models.quant import qinput, qlinear, qrelu

HIDDEN = (64, 64, 64)


def tfc_specs() -> list[LayerSpec]:
    specs = [LayerSpec("input_quant", "input", has_weight=False, has_act=True)]
    specs += [LayerSpec(f"fc{i}", "linear", True, True) for i in range(len(HIDDEN))]
    specs.append(LayerSpec(f"fc{len(HIDDEN)}", "linear", True, False))
    return specs


class TFC(nn.Module):
    def __init__(self, bits: BitConfig, num_classes: int = 10, in_features: int = 784):
        super().__init__()
        self.input_quant = qinput(bits["input_quant"].a)
        dims = (in_features, *HIDDEN)
        for i in range(len(HIDDEN)):
            b = bits[f"fc{i}"]
            setattr(self, f"fc{i}", qlinear(dims[i], dims[i + 1], b.w))
            setattr(self, f"bn{i}", nn.BatchNorm1d(dims[i + 1]))
            setattr(self, f"act{i}", qrelu(b.a))
        last = len(HIDDEN)
        setattr(self, f"fc{last}", qlinear(HIDDEN[-1], num_classes, bits[f"fc{last}"].w))
        self.bn_out = nn.BatchNorm1d(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x.flatten(1))
        for i in range(len(HIDDEN)):
            x = getattr(self, f"act{i}")(getattr(self, f"bn{i}")(getattr(self, f"fc{i}")(x)))
        return self.bn_out(getattr(self, f"fc{len(HIDDEN)}")(x))
