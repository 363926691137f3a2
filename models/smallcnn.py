"""Two small CNVs-alike: ``smallcnn`` (MNIST, 16/32/32 filters) and ``cifar-smallcnn`` (CIFAR-10,
16/32/64 filters, ~34k parameters, the network of ``bench/models/cifar_smallcnn.py``).

They exist because OCNNA prunes convolution filters and TFC has none, while CNV needs CIFAR-10
training that 2 CPU cores cannot afford for a multi-seed benchmark. They follow CNV's layout
(``conv{i}`` + ``features[i]`` = BN, quantized ReLU, max-pool; then ``fc0``), so the same filter
surgery applies, and they are zoo entries like the others (default: 4/4 bits inside, 8-bit
input, first and last layer).
"""

from __future__ import annotations

import torch
from torch import nn

from bitswarm.models.bitconfig import BitConfig, LayerSpec
from bitswarm.models.quant import qconv, qinput, qlinear, qrelu

SMALL_CONV = (16, 32, 32)
CIFAR_CONV = (16, 32, 64)


def smallcnn_specs(n_conv: int = len(SMALL_CONV)) -> list[LayerSpec]:
    specs = [LayerSpec("input_quant", "input", False, True)]
    specs += [LayerSpec(f"conv{i}", "conv", True, True) for i in range(n_conv)]
    specs.append(LayerSpec("fc0", "linear", True, False))
    return specs


class SmallCNN(nn.Module):
    """CxHxW -> n x (3x3 conv 'same', BN, ReLU, 2x2 max-pool) -> linear -> 10.

    MNIST (1x28x28, 16/32/32): linear 288 -> 10; CIFAR-10 (3x32x32, 16/32/64): linear 1024 -> 10.
    """

    def __init__(self, bits: BitConfig, num_classes: int = 10, input_shape: tuple[int, ...] = (1, 28, 28),
                 widths: tuple[int, ...] = SMALL_CONV):
        super().__init__()
        self.input_quant = qinput(bits["input_quant"].a)
        self.features = nn.ModuleList()
        cin, side = input_shape[0], input_shape[1]
        for i, cout in enumerate(widths):
            b = bits[f"conv{i}"]
            setattr(self, f"conv{i}", qconv(cin, cout, 3, b.w, padding=1))
            self.features.append(nn.Sequential(nn.BatchNorm2d(cout), qrelu(b.a), nn.MaxPool2d(2)))
            cin, side = cout, side // 2
        self.fc0 = qlinear(cin * side * side, num_classes, bits["fc0"].w)
        self.bn_out = nn.BatchNorm1d(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x)
        for i, post in enumerate(self.features):
            x = post(getattr(self, f"conv{i}")(x))
        return self.bn_out(self.fc0(x.flatten(1)))
