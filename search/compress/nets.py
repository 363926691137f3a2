"""Models the compression commands accept: the zoo plus two small 3-conv CNNs.

``smallcnn`` (MNIST, 16/32/32 filters) and ``cifar-smallcnn`` (CIFAR-10, 16/32/64 filters,
~34k parameters, the same network as ``bench/models/cifar_smallcnn.py``) exist because OCNNA
prunes convolution filters and TFC has none, while CNV needs CIFAR-10 training that 2 CPU cores
cannot afford for a multi-seed benchmark. They follow CNV's layout
(``conv{i}`` + ``features[i]`` = BN, quantized ReLU, max-pool; then ``fc0``) so the same
surgery applies to both, and are :class:`ZooEntry` objects like the zoo's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import cache

import torch
from torch import nn

from bitswarm.errors import ConfigError
from bitswarm.models import ZOO, BitConfig, LayerSpec, ZooEntry
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


def _local(name: str, description: str, dataset: str, input_shape: tuple[int, ...],
           widths: tuple[int, ...]) -> ZooEntry:
    """A ``SmallCNN`` as a zoo entry; defaults 4/4 bits with an 8-bit input, first and last layer."""
    return ZooEntry(name, description, dataset, input_shape,
                    build_fn=lambda bits: SmallCNN(bits, input_shape=input_shape, widths=widths),
                    specs_fn=lambda: smallcnn_specs(len(widths)), first_last_bits=(8, 8, 8))


LOCAL = {e.name: e for e in (
    _local("smallcnn", "3-conv CNN for MNIST (compression benchmarks)", "mnist", (1, 28, 28), SMALL_CONV),
    _local("cifar-smallcnn", "3-conv CNN for CIFAR-10, 16/32/64 filters (compression benchmarks)", "cifar10",
           (3, 32, 32), CIFAR_CONV),
)}


@cache
def entry(name: str) -> ZooEntry:
    if name in LOCAL:
        return LOCAL[name]
    if name in ZOO:
        return ZOO[name]
    raise ConfigError("--model", "model", f"unknown model '{name}'", ", ".join([*ZOO, *LOCAL]))


def build(name: str, bits: BitConfig) -> nn.Module:
    return entry(name).build(bits)


def arch_entry(arch: dict) -> ZooEntry:
    """The zoo entry of a compression stage's ``arch.json``: after pruning, a model of the same
    layers (same bit variables) whose convs keep only the listed filters, so the bit-width search,
    the cost models (MACs measured on the built model) and the export all see the pruned shapes."""
    if not arch.get("keep"):
        return entry(arch["model"])
    return _pruned_entry(arch["model"], json.dumps({k: list(v) for k, v in arch["keep"].items()}, sort_keys=True))


@cache  # one entry (and one measured layer profile) per pruned architecture
def _pruned_entry(model: str, keep_json: str) -> ZooEntry:
    from bitswarm.search.compress.surgery import apply_keep

    base, keep = entry(model), json.loads(keep_json)
    tag = hashlib.sha1(keep_json.encode()).hexdigest()[:8]

    def build_fn(bits: BitConfig) -> nn.Module:
        model = base.build_fn(bits)
        apply_keep(model, base.name, keep)
        return model

    kept = sum(map(len, keep.values()))
    return replace(base, name=f"{base.name}-pruned-{tag}", build_fn=build_fn,
                   description=f"{base.name} with {kept} filters kept by pruning ({base.description})")
