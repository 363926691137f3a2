"""Models the compression commands accept: the zoo plus two small 3-conv CNNs.

``smallcnn`` (MNIST, 16/32/32 filters) and ``cifar-smallcnn`` (CIFAR-10, 16/32/64 filters,
~34k parameters, the same network as ``bench/models/cifar_smallcnn.py``) exist because OCNNA
prunes convolution filters and TFC has none, while CNV needs CIFAR-10 training that 2 CPU cores
cannot afford for a multi-seed benchmark. They follow CNV's layout
(``conv{i}`` + ``features[i]`` = BN, quantized ReLU, max-pool; then ``fc0``) so the same
surgery applies to both. It duck-types the :class:`ZooEntry` interface that
``bitswarm.workflow.train_float`` / ``finetune_quantized`` use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from bitswarm.errors import ConfigError
from bitswarm.models import ZOO, BitConfig, LayerSpec
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


@dataclass(frozen=True)
class LocalEntry:
    """The subset of ``ZooEntry`` the workflow helpers use."""

    name: str
    description: str
    dataset: str
    input_shape: tuple[int, ...]
    widths: tuple[int, ...] = SMALL_CONV

    @property
    def specs(self) -> tuple[LayerSpec, ...]:
        return tuple(smallcnn_specs(len(self.widths)))

    def build(self, bits: BitConfig | None = None) -> nn.Module:
        bits = bits if bits is not None else self.default_bits()
        bits.validate(self.specs, source=f"bit config for {self.name}")
        return SmallCNN(bits, input_shape=self.input_shape, widths=self.widths)

    def uniform_bits(self, w: int, a: int, keep_first_last: bool = False) -> BitConfig:
        over = {"input_quant": (w, 8), "conv0": (8, a), "fc0": (8, a)} if keep_first_last else {}
        return BitConfig.uniform(self.specs, w, a, **over)

    def default_bits(self) -> BitConfig:
        return self.uniform_bits(4, 4, keep_first_last=True)


LOCAL = {e.name: e for e in (
    LocalEntry("smallcnn", "3-conv CNN for MNIST (compression benchmarks)", "mnist", (1, 28, 28)),
    LocalEntry("cifar-smallcnn", "3-conv CNN for CIFAR-10, 16/32/64 filters (compression benchmarks)",
               "cifar10", (3, 32, 32), CIFAR_CONV),
)}


@cache
def entry(name: str):
    if name in LOCAL:
        return LOCAL[name]
    if name in ZOO:
        return ZOO[name]
    raise ConfigError("--model", "model", f"unknown model '{name}'", ", ".join([*ZOO, *LOCAL]))


def build(name: str, bits: BitConfig) -> nn.Module:
    return entry(name).build(bits)
