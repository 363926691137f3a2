"""The search space: one integer variable per layer bit-width, in the index space of the
sorted candidate set (so Eq. 7's arithmetic never leaves the set)."""

from __future__ import annotations

from dataclasses import dataclass

from bitswarm.models import BitConfig, LayerSpec

Position = tuple[int, ...]


@dataclass(frozen=True)
class Space:
    variables: tuple[tuple[str, str], ...]  # (layer name, "w" | "a")
    candidates: tuple[int, ...]  # sorted bit-widths
    fixed: BitConfig  # bits of everything not searched (e.g. the logits' missing activation)

    @classmethod
    def from_specs(cls, specs: tuple[LayerSpec, ...], candidates, base: BitConfig) -> Space:
        variables = []
        for s in specs:
            if s.has_weight:
                variables.append((s.name, "w"))
            if s.has_act:
                variables.append((s.name, "a"))
        return cls(tuple(variables), tuple(sorted(set(candidates))), base)

    @property
    def dim(self) -> int:
        return len(self.variables)

    @property
    def high(self) -> int:
        return len(self.candidates) - 1

    def to_bits(self, pos: Position) -> BitConfig:
        layers = {n: {"w": b.w, "a": b.a} for n, b in self.fixed.layers}
        for (name, kind), idx in zip(self.variables, pos, strict=True):
            layers[name][kind] = self.candidates[idx]
        return BitConfig.from_dict({"layers": layers})

    def from_bits(self, bits: BitConfig) -> Position:
        return tuple(self.candidates.index(getattr(bits[n], k)) for n, k in self.variables)

    def clip(self, values) -> Position:
        return tuple(int(min(self.high, max(0, round(float(v))))) for v in values)
