"""Per-layer bit configuration: a hashable value saved as YAML/JSON.

A model declares its quantizable layers as :class:`LayerSpec` entries. Each layer has a
weight bit-width ``w`` (``None`` for layers without weights, e.g. the input quantizer) and
an output activation bit-width ``a`` (``None`` where the output is not quantized, e.g. the
logits of the last layer). ``32`` means unquantized float, every other value is an integer
quantizer of that many bits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from bitswarm.atomic import write_text
from bitswarm.boards import ALL_BITS  # the candidate set of the design card; 32 = float
from bitswarm.errors import ConfigError
from bitswarm.files import read_structured


@dataclass(frozen=True)
class LayerSpec:
    """A quantizable layer of a model: its name and which bit-widths it carries."""

    name: str
    kind: str  # "input", "conv", "dwconv", "linear"
    has_weight: bool
    has_act: bool
    macs: int = 0  # multiply-accumulates per inference (for Eq. 11 and cost models)
    params: int = 0  # number of weights


@dataclass(frozen=True)
class LayerBits:
    w: int | None
    a: int | None


@dataclass(frozen=True)
class BitConfig:
    """Weight/activation bits per named layer, in model order. Hashable and comparable."""

    layers: tuple[tuple[str, LayerBits], ...]

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def uniform(cls, specs: Iterable[LayerSpec], w: int, a: int, **overrides) -> BitConfig:
        """Same bits everywhere; ``overrides`` maps layer name to ``(w, a)``."""
        out = []
        for s in specs:
            wb, ab = overrides.get(s.name, (w, a))
            out.append((s.name, LayerBits(wb if s.has_weight else None, ab if s.has_act else None)))
        return cls(tuple(out))

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "<bit config>") -> BitConfig:
        if not isinstance(data, Mapping) or "layers" not in data:
            raise ConfigError(source, "layers", "missing", "a mapping of layer name -> {w, a}")
        layers = data["layers"]
        if not isinstance(layers, Mapping):
            raise ConfigError(source, "layers", "must be a mapping", "layer name -> {w, a}")
        out = []
        for name, bits in layers.items():
            if not isinstance(bits, Mapping) or set(bits) - {"w", "a"}:
                raise ConfigError(source, f"layers.{name}", f"bad entry {bits!r}", "keys w and a")
            out.append((str(name), LayerBits(_int_or_none(bits.get("w")), _int_or_none(bits.get("a")))))
        return cls(tuple(out))

    @classmethod
    def load(cls, path: str | Path) -> BitConfig:
        data = read_structured(path)
        return cls.from_dict(data, source=str(path))

    # ---- views --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"layers": {n: {"w": b.w, "a": b.a} for n, b in self.layers}}

    def save(self, path: str | Path) -> None:
        path = Path(path)
        data = self.to_dict()
        text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
        write_text(path, text)

    def __getitem__(self, name: str) -> LayerBits:
        for n, b in self.layers:
            if n == name:
                return b
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.layers)

    def key(self) -> str:
        """A short stable digest, used in cache keys and file names."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def short(self) -> str:
        """Compact human form, e.g. ``input:a2 fc0:w2a2 ... fc3:w8``."""
        parts = []
        for n, b in self.layers:
            s = (f"w{b.w}" if b.w is not None else "") + (f"a{b.a}" if b.a is not None else "")
            parts.append(f"{n}:{s}")
        return " ".join(parts)

    # ---- validation ---------------------------------------------------------------------
    def validate(self, specs: Iterable[LayerSpec], candidates: Iterable[int] = ALL_BITS,
                 source: str = "<bit config>") -> BitConfig:
        """Check layer names against ``specs`` and bits against ``candidates``; return self."""
        specs = list(specs)
        allowed = tuple(sorted(set(candidates)))
        known = {s.name: s for s in specs}
        for name, bits in self.layers:
            if name not in known:
                raise ConfigError(source, f"layers.{name}", "unknown layer", ", ".join(known))
            spec = known[name]
            for field, value, present in (("w", bits.w, spec.has_weight), ("a", bits.a, spec.has_act)):
                if not present and value is not None:
                    raise ConfigError(source, f"layers.{name}.{field}",
                                      f"layer '{name}' has no {'weights' if field == 'w' else 'quantized output'}",
                                      "null / omitted")
                # a boolean (YAML's yes/true) or a float is not a bit-width, though True == 1 and 2.0 == 2
                if present and (isinstance(value, bool) or not isinstance(value, int) or value not in allowed):
                    raise ConfigError(source, f"layers.{name}.{field}", f"bit-width {value!r} not in candidate set",
                                      ", ".join(map(str, allowed)))
        missing = [s.name for s in specs if s.name not in dict(self.layers)]
        if missing:
            raise ConfigError(source, "layers", f"missing layers {', '.join(missing)}", ", ".join(known))
        return self


def _int_or_none(v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        return v  # left for validate() to reject with the allowed values
    return int(v)
