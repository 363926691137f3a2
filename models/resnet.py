"""ResNet-20/32/56 for CIFAR (He et al. 2016, §4.2) with a 1x1-conv projection shortcut."""

from __future__ import annotations

import torch
from torch import nn

from bitswarm.models.bitconfig import BitConfig, LayerSpec
from bitswarm.models.quant import qconv, qinput, qlinear, qrelu

WIDTHS = (16, 32, 64)


def _blocks(depth: int) -> int:
    if (depth - 2) % 6:
        raise ValueError(f"ResNet depth must be 6n+2, got {depth}")
    return (depth - 2) // 6


def _layout(depth: int):
    """Yield (stage, block, cin, cout, stride) for every basic block."""
    cin = WIDTHS[0]
    for s, cout in enumerate(WIDTHS, start=1):
        for b in range(_blocks(depth)):
            stride = 2 if (b == 0 and s > 1) else 1
            yield s, b, cin, cout, stride
            cin = cout


def resnet_specs(depth: int) -> list[LayerSpec]:
    specs = [LayerSpec("input_quant", "input", False, True), LayerSpec("conv0", "conv", True, True)]
    for s, b, cin, cout, stride in _layout(depth):
        p = f"layer{s}.{b}"
        specs += [LayerSpec(f"{p}.conv1", "conv", True, True), LayerSpec(f"{p}.conv2", "conv", True, True)]
        if stride != 1 or cin != cout:
            specs.append(LayerSpec(f"{p}.shortcut", "conv", True, False))
    specs.append(LayerSpec("fc", "linear", True, False))
    return specs


class BasicBlock(nn.Module):
    def __init__(self, bits: BitConfig, prefix: str, cin: int, cout: int, stride: int):
        super().__init__()
        b1, b2 = bits[f"{prefix}.conv1"], bits[f"{prefix}.conv2"]
        self.conv1 = qconv(cin, cout, 3, b1.w, stride=stride, padding=1)
        self.bn1, self.act1 = nn.BatchNorm2d(cout), qrelu(b1.a)
        self.conv2 = qconv(cout, cout, 3, b2.w, padding=1)
        self.bn2, self.act2 = nn.BatchNorm2d(cout), qrelu(b2.a)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = qconv(cin, cout, 1, bits[f"{prefix}.shortcut"].w, stride=stride)
            self.bn_sc = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        sc = x if self.shortcut is None else self.bn_sc(self.shortcut(x))
        return self.act2(y + sc)


class ResNetCifar(nn.Module):
    def __init__(self, bits: BitConfig, depth: int = 20, num_classes: int = 10):
        super().__init__()
        self.input_quant = qinput(bits["input_quant"].a)
        self.conv0 = qconv(3, WIDTHS[0], 3, bits["conv0"].w, padding=1)
        self.bn0, self.act0 = nn.BatchNorm2d(WIDTHS[0]), qrelu(bits["conv0"].a)
        stages: dict[int, list[nn.Module]] = {1: [], 2: [], 3: []}
        for s, b, cin, cout, stride in _layout(depth):
            stages[s].append(BasicBlock(bits, f"layer{s}.{b}", cin, cout, stride))
        self.layer1, self.layer2, self.layer3 = (nn.Sequential(*stages[s]) for s in (1, 2, 3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = qlinear(WIDTHS[-1], num_classes, bits["fc"].w, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act0(self.bn0(self.conv0(self.input_quant(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))
