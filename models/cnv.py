"""FINN's CNV: the VGG-like CIFAR-10 network of Brevitas' bnn_pynq (valid 3x3 convolutions)."""

from __future__ import annotations

import torch
from torch import nn

from bitswarm.models.bitconfig import BitConfig, LayerSpec
from bitswarm.models.quant import qconv, qinput, qlinear, qrelu

CONV = ((64, False), (64, True), (128, False), (128, True), (256, False), (256, False))
FC = (512, 512)


def cnv_specs() -> list[LayerSpec]:
    specs = [LayerSpec("input_quant", "input", False, True)]
    specs += [LayerSpec(f"conv{i}", "conv", True, True) for i in range(len(CONV))]
    specs += [LayerSpec(f"fc{i}", "linear", True, True) for i in range(len(FC))]
    specs.append(LayerSpec(f"fc{len(FC)}", "linear", True, False))
    return specs


class CNV(nn.Module):
    def __init__(self, bits: BitConfig, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.input_quant = qinput(bits["input_quant"].a)
        self.features = nn.ModuleList()
        cin = in_channels
        for i, (cout, pool) in enumerate(CONV):
            b = bits[f"conv{i}"]
            setattr(self, f"conv{i}", qconv(cin, cout, 3, b.w))
            block = [nn.BatchNorm2d(cout), qrelu(b.a)] + ([nn.MaxPool2d(2)] if pool else [])
            self.features.append(nn.Sequential(*block))
            cin = cout
        dims = (cin, *FC)
        for i in range(len(FC)):
            b = bits[f"fc{i}"]
            setattr(self, f"fc{i}", qlinear(dims[i], dims[i + 1], b.w))
            setattr(self, f"fc_post{i}", nn.Sequential(nn.BatchNorm1d(dims[i + 1]), qrelu(b.a)))
        setattr(self, f"fc{len(FC)}", qlinear(FC[-1], num_classes, bits[f"fc{len(FC)}"].w))
        self.bn_out = nn.BatchNorm1d(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x)
        for i, post in enumerate(self.features):
            x = post(getattr(self, f"conv{i}")(x))
        x = x.flatten(1)
        for i in range(len(FC)):
            x = getattr(self, f"fc_post{i}")(getattr(self, f"fc{i}")(x))
        return self.bn_out(getattr(self, f"fc{len(FC)}")(x))
