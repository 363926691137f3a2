"""Models the compression commands accept (the zoo, ``smallcnn`` and ``cifar-smallcnn``
included) and ``arch_entry``: a compression stage's ``arch.json`` as a zoo entry."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import cache

from torch import nn

from bitswarm.errors import ConfigError
from bitswarm.models import ZOO, BitConfig, ZooEntry


def entry(name: str) -> ZooEntry:
    """A zoo model (the compression stages take no user models: their surgery knows the zoo's layouts)."""
    if name in ZOO:
        return ZOO[name]
    raise ConfigError("--model", "model", f"unknown model '{name}'", ", ".join(ZOO))


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
