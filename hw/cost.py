"""The one interface between hardware cost and search.

A cost model maps (model, bit configuration, board) to a :class:`Cost` with named fields.
A :class:`Constraint` turns a cost into a violation (0 = feasible) for Deb's rule.
Cost models register themselves by name and are chosen with ``--cost``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bitswarm.boards import Board
from bitswarm.errors import ConfigError
from bitswarm.models import BitConfig, ZooEntry

#: Quantities a cost may carry, with their units (used in messages and reports).
QUANTITIES = {
    "lut": "LUT", "ff": "FF", "bram18": "BRAM18", "dsp": "DSP", "uram": "URAM",
    "cycles": "cycles", "latency_ms": "ms", "throughput_fps": "inferences/s",
    "avg_bits": "bits (Eq. 11 average operation bit-width)", "bops": "bit-operations",
    "weight_bits": "bits of weight memory",
}


#: the CLI's ``--max-*`` flags -> the quantity they constrain (errors name the flag)
SHORTCUTS = {"max_avg_bits": "avg_bits", "max_latency_ms": "latency_ms", "max_lut": "lut",
             "max_bram18": "bram18", "max_dsp": "dsp", "max_bops": "bops"}


@dataclass(frozen=True)
class LayerCost:
    name: str
    values: Mapping[str, float]


@dataclass(frozen=True)
class Cost:
    source: str  # which model produced it, e.g. "bitops", "finn-estimate", "surrogate", "tvm-rpc"
    values: Mapping[str, float]
    per_layer: tuple[LayerCost, ...] = ()
    meta: Mapping[str, object] = field(default_factory=dict)  # e.g. the folding chosen

    def __getitem__(self, quantity: str) -> float:
        try:
            return float(self.values[quantity])
        except KeyError:
            raise KeyError(f"cost from '{self.source}' has no '{quantity}'; it has {', '.join(self.values)}") from None


class CostModel(Protocol):
    """``cost(entry, bits, board) -> Cost``; ``provides`` lists the quantities it returns."""

    name: str
    provides: tuple[str, ...]

    def __call__(self, entry: ZooEntry, bits: BitConfig, board: Board) -> Cost: ...


@dataclass(frozen=True)
class Constraint:
    """``quantity <= limit``. Violation is the relative excess, 0 when satisfied."""

    quantity: str
    limit: float

    def violation(self, cost: Cost) -> float:
        return max(0.0, (cost[self.quantity] - self.limit) / abs(self.limit or 1.0))

    def describe(self) -> str:
        return f"{self.quantity} <= {self.limit:g} {QUANTITIES.get(self.quantity, '')}".strip()


def total_violation(constraints: tuple[Constraint, ...], cost: Cost) -> float:
    return sum(c.violation(cost) for c in constraints)


_REGISTRY: dict[str, Callable[..., CostModel]] = {}


def register_cost(name: str):
    """Class/factory decorator: ``@register_cost("bitops")``."""

    def deco(factory):
        _REGISTRY[name] = factory
        return factory

    return deco


def cost_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _factory(name: str):
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError("--cost", "cost", f"unknown cost model {name!r}", ", ".join(sorted(_REGISTRY)))
    return _REGISTRY[name]


def get_cost_model(name: str, **options) -> CostModel:
    """The registered cost model ``name``; a model with a disk cache takes ``cache_dir`` (it never
    reads the environment itself: the CLI reads it once and passes it down)."""
    return _factory(name)(**options)


def cost_provides(name: str) -> tuple[str, ...]:
    """The quantities cost model ``name`` computes, without building it."""
    return tuple(_factory(name).provides)


def needs_cache(name: str) -> bool:
    """Whether cost model ``name`` keeps a disk cache (and so takes ``cache_dir``)."""
    return bool(getattr(_factory(name), "uses_cache", False))


def require_cache_dir(cache_dir, who: str):
    """``cache_dir`` as a Path; a clear error when a caller forgot to pass one."""
    if cache_dir is None:
        raise ValueError(f"{who} needs cache_dir (the environment's cache directory, passed down by the caller)")
    from pathlib import Path

    return Path(cache_dir)


def _load_builtin() -> None:
    import importlib
    import pkgutil

    import bitswarm.hw as hw

    for info in pkgutil.iter_modules(hw.__path__):
        if info.name.startswith("cost_"):
            importlib.import_module(f"bitswarm.hw.{info.name}")
