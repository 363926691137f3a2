"""The model zoo: name -> how to build it, its layers, dataset and default bits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from bitswarm.errors import ConfigError
from bitswarm.models.bitconfig import BitConfig, LayerSpec
from bitswarm.models.cnv import CNV, cnv_specs
from bitswarm.models.mobilenetv2 import MobileNetV2Cifar, mobilenetv2_specs
from bitswarm.models.resnet import ResNetCifar, resnet_specs
from bitswarm.models.smallcnn import CIFAR_CONV, SMALL_CONV, SmallCNN, smallcnn_specs
from bitswarm.models.tfc import TFC, tfc_specs


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    dataset: str
    input_shape: tuple[int, ...]  # (C, H, W) without batch
    build_fn: Callable[[BitConfig], nn.Module]
    specs_fn: Callable[[], list[LayerSpec]]
    first_last_bits: tuple[int, int, int]  # (input act bits, first-layer w bits, last-layer w bits)
    defaults: BitConfig | None = None  # e.g. the bits a user's Brevitas model came with

    @property
    def specs(self) -> tuple[LayerSpec, ...]:
        return layer_profile(self)

    def build(self, bits: BitConfig | None = None) -> nn.Module:
        bits = bits if bits is not None else self.default_bits()
        bits.validate(self.specs, source=f"bit config for {self.name}")
        return self.build_fn(bits)

    def uniform_bits(self, w: int, a: int, keep_first_last: bool = False) -> BitConfig:
        """Uniform ``w``/``a`` bits; with ``keep_first_last`` the documented edge defaults stay."""
        overrides = {}
        if keep_first_last:
            overrides = self._edge_overrides(w, a)
        return BitConfig.uniform(self.specs, w, a, **overrides)

    def finn_design_bits(self, w: int, a: int) -> BitConfig:
        """FINN's hand-built uniform designs (finn-examples' cnv-w1a1, -w1a2, -w2a2): every weight ``w`` bits,
        every hidden activation ``a`` bits, the input quantizer at 8 bits as bnn_pynq's CNV (at 2 bits for
        MNIST models, whose 8-bit input thresholding alone costs ~100,000 LUT in FINN)."""
        layers = {s.name: {"w": w if s.has_weight else None, "a": a if s.has_act else None} for s in self.specs}
        layers[self.specs[0].name]["a"] = 2 if self.dataset == "mnist" else 8
        return BitConfig.from_dict({"layers": layers})

    def default_bits(self) -> BitConfig:
        """Documented default: 4-bit weights and activations, edges as ``first_last_bits``."""
        if self.defaults is not None:
            return self.defaults
        return self.uniform_bits(4, 4, keep_first_last=True)

    def _edge_overrides(self, w: int, a: int) -> dict[str, tuple[int, int]]:
        in_a, first_w, last_w = self.first_last_bits
        specs = self.specs
        weighted = [s for s in specs if s.has_weight]
        return {specs[0].name: (w, in_a), weighted[0].name: (first_w, a), weighted[-1].name: (last_w, a)}


#: the uniform designs FINN users build by hand, beside which a searched design is reported
FINN_DESIGNS = ((1, 1), (1, 2), (2, 2))


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("tfc", "FINN TFC: MLP 784-64-64-64-10", "mnist", (1, 28, 28), TFC, tfc_specs, (2, 8, 8)),
        ZooEntry("cnv", "FINN CNV: 6 conv + 3 fc, VGG-like", "cifar10", (3, 32, 32), CNV, cnv_specs, (8, 8, 8)),
        *(
            ZooEntry(f"resnet{d}", f"ResNet-{d} for CIFAR", "cifar10", (3, 32, 32),
                     (lambda b, d=d: ResNetCifar(b, depth=d)), (lambda d=d: resnet_specs(d)), (8, 8, 8))
            for d in (20, 32, 56)
        ),
        ZooEntry("mobilenetv2", "MobileNetV2 for 32x32 input", "cifar10", (3, 32, 32),
                 MobileNetV2Cifar, mobilenetv2_specs, (8, 8, 8)),
        ZooEntry("smallcnn", "3-conv CNN (16/32/32) for MNIST, compression benchmarks", "mnist", (1, 28, 28),
                 lambda b: SmallCNN(b, input_shape=(1, 28, 28), widths=SMALL_CONV), smallcnn_specs, (8, 8, 8)),
        ZooEntry("cifar-smallcnn", "3-conv CNN (16/32/64) for CIFAR-10, compression benchmarks", "cifar10",
                 (3, 32, 32), lambda b: SmallCNN(b, input_shape=(3, 32, 32), widths=CIFAR_CONV),
                 lambda: smallcnn_specs(len(CIFAR_CONV)), (8, 8, 8)),
    )
}


def get_model(name: str, weights: str | None = None, dataset: str = "cifar10",
              input_shape: tuple[int, ...] | None = None) -> ZooEntry:
    """A zoo model by name, or a user's model: ``file.py:fn`` / ``package.module:fn``."""
    if name in ZOO:
        return ZOO[name]
    if ":" in name:
        from bitswarm.models.custom import custom_entry

        return custom_entry(name, weights=weights, dataset=dataset, input_shape=input_shape)
    raise ConfigError("--model", "model", f"unknown model '{name}'",
                      ", ".join(ZOO) + ", or path/to/file.py:build / package.module:build") from None


_PROFILES: dict[tuple[str, int], tuple[LayerSpec, ...]] = {}


def layer_profile(entry: ZooEntry) -> tuple[LayerSpec, ...]:
    """The model's layer specs with MACs and parameter counts measured by a forward pass."""
    key = (entry.name, id(entry.build_fn))
    if key not in _PROFILES:
        with torch.random.fork_rng():  # profiling must not move the caller's RNG (reproducible builds)
            _PROFILES[key] = _profile(entry)
    return _PROFILES[key]


def _profile(entry: ZooEntry) -> tuple[LayerSpec, ...]:
    specs = entry.specs_fn()
    model = entry.build_fn(BitConfig.uniform(specs, 32, 32)).eval()
    macs: dict[str, tuple[int, int]] = {}

    def hook(mod_name):
        def fn(mod, inp, out):
            w = mod.weight
            per_out = w[0].numel()  # MACs per output element
            out_elems = out.numel() if isinstance(mod, nn.Linear) else out[0].numel()
            macs[mod_name] = (int(out_elems * per_out), int(w.numel()))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *entry.input_shape))
    except RuntimeError as e:
        raise ConfigError("--model", "input shape", f"{entry.name} does not accept input {entry.input_shape} "
                          f"({str(e).splitlines()[0]})", "a --dataset (or --input-shape) matching the model") from e
    for h in handles:
        h.remove()
    return tuple(replace(s, macs=macs.get(s.name, (0, 0))[0], params=macs.get(s.name, (0, 0))[1])
                 for s in specs)
