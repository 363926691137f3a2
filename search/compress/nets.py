"""Models the compression commands accept: the zoo plus ``smallcnn``, a 3-conv MNIST CNN.

``smallcnn`` exists because OCNNA prunes convolution filters and TFC has none, while CNV needs
CIFAR-10 training that this machine cannot afford in a benchmark. It follows CNV's layout
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


def smallcnn_specs() -> list[LayerSpec]:
    specs = [LayerSpec("input_quant", "input", False, True)]
    specs += [LayerSpec(f"conv{i}", "conv", True, True) for i in range(len(SMALL_CONV))]
    specs.append(LayerSpec("fc0", "linear", True, False))
    return specs


class SmallCNN(nn.Module):
    """28x28x1 -> 3 x (3x3 conv 'same', BN, ReLU, 2x2 max-pool) -> linear 288 -> 10."""

    def __init__(self, bits: BitConfig, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.input_quant = qinput(bits["input_quant"].a)
        self.features = nn.ModuleList()
        cin = in_channels
        for i, cout in enumerate(SMALL_CONV):
            b = bits[f"conv{i}"]
            setattr(self, f"conv{i}", qconv(cin, cout, 3, b.w, padding=1))
            self.features.append(nn.Sequential(nn.BatchNorm2d(cout), qrelu(b.a), nn.MaxPool2d(2)))
            cin = cout
        self.fc0 = qlinear(cin * 3 * 3, num_classes, bits["fc0"].w)
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

    @property
    def specs(self) -> tuple[LayerSpec, ...]:
        return tuple(smallcnn_specs())

    def build(self, bits: BitConfig | None = None) -> nn.Module:
        bits = bits if bits is not None else self.default_bits()
        bits.validate(self.specs, source=f"bit config for {self.name}")
        return SmallCNN(bits)

    def uniform_bits(self, w: int, a: int, keep_first_last: bool = False) -> BitConfig:
        over = {"input_quant": (w, 8), "conv0": (8, a), "fc0": (8, a)} if keep_first_last else {}
        return BitConfig.uniform(self.specs, w, a, **over)

    def default_bits(self) -> BitConfig:
        return self.uniform_bits(4, 4, keep_first_last=True)


LOCAL = {"smallcnn": LocalEntry("smallcnn", "3-conv CNN for MNIST (compression benchmarks)", "mnist", (1, 28, 28))}


@cache
def entry(name: str):
    if name in LOCAL:
        return LOCAL[name]
    if name in ZOO:
        return ZOO[name]
    raise ConfigError("--model", "model", f"unknown model '{name}'", ", ".join([*ZOO, *LOCAL]))


def build(name: str, bits: BitConfig) -> nn.Module:
    return entry(name).build(bits)
