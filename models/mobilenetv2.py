"""MobileNetV2 (Sandler et al. 2018) adapted to 32x32 input: stride 1 in the stem and stage 2."""

from __future__ import annotations

import torch
from torch import nn

from bitswarm.models.bitconfig import BitConfig, LayerSpec
from bitswarm.models.quant import qconv, qinput, qlinear, qrelu

# (expansion t, channels c, repeats n, first stride s) — CIFAR variant: strides 1,1,2,2,1,2,1
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))
STEM, HEAD = 32, 1280


def _layout():
    cin, idx = STEM, 0
    for t, c, n, s in SETTINGS:
        for i in range(n):
            yield idx, cin, c, t, (s if i == 0 else 1)
            cin, idx = c, idx + 1


def mobilenetv2_specs() -> list[LayerSpec]:
    specs = [LayerSpec("input_quant", "input", False, True), LayerSpec("stem", "conv", True, True)]
    for idx, _cin, _c, t, _s in _layout():
        p = f"blocks.{idx}"
        if t != 1:
            specs.append(LayerSpec(f"{p}.expand", "conv", True, True))
        specs += [LayerSpec(f"{p}.dw", "dwconv", True, True), LayerSpec(f"{p}.project", "conv", True, False)]
    specs += [LayerSpec("head", "conv", True, True), LayerSpec("fc", "linear", True, False)]
    return specs


class InvertedResidual(nn.Module):
    def __init__(self, bits: BitConfig, prefix: str, cin: int, cout: int, t: int, stride: int):
        super().__init__()
        hidden = cin * t
        self.expand = None
        if t != 1:
            self.expand = qconv(cin, hidden, 1, bits[f"{prefix}.expand"].w)
            self.expand_post = nn.Sequential(nn.BatchNorm2d(hidden), qrelu(bits[f"{prefix}.expand"].a))
        self.dw = qconv(hidden, hidden, 3, bits[f"{prefix}.dw"].w, stride=stride, padding=1, groups=hidden)
        self.dw_post = nn.Sequential(nn.BatchNorm2d(hidden), qrelu(bits[f"{prefix}.dw"].a))
        self.project = qconv(hidden, cout, 1, bits[f"{prefix}.project"].w)
        self.bn_project = nn.BatchNorm2d(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand_post(self.expand(x))
        y = self.bn_project(self.project(self.dw_post(self.dw(y))))
        return x + y if self.residual else y


class MobileNetV2Cifar(nn.Module):
    def __init__(self, bits: BitConfig, num_classes: int = 10):
        super().__init__()
        self.input_quant = qinput(bits["input_quant"].a)
        self.stem = qconv(3, STEM, 3, bits["stem"].w, padding=1)
        self.stem_post = nn.Sequential(nn.BatchNorm2d(STEM), qrelu(bits["stem"].a))
        self.blocks = nn.Sequential(*(InvertedResidual(bits, f"blocks.{i}", cin, c, t, s)
                                      for i, cin, c, t, s in _layout()))
        self.head = qconv(SETTINGS[-1][1], HEAD, 1, bits["head"].w)
        self.head_post = nn.Sequential(nn.BatchNorm2d(HEAD), qrelu(bits["head"].a))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = qlinear(HEAD, num_classes, bits["fc"].w, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_post(self.stem(self.input_quant(x)))
        x = self.head_post(self.head(self.blocks(x)))
        return self.fc(self.pool(x).flatten(1))
