"""The search space: one integer variable per layer bit-width, each in the index space of its
own sorted candidate set (so Eq. 7's arithmetic never leaves that variable's set).

A cost model may narrow a variable's candidates (``narrow``: e.g. FINN cannot map a bipolar
input quantizer) and may forbid *combinations* of values that no per-variable set can express
(``rules``: e.g. FINN's rule for a 1-bit activation depends on the next layer's weights). A rule
is a pure function ``bits -> BitConfig | None`` that returns the nearest allowed configuration
(or ``None`` when ``bits`` is allowed); ``Space.clip`` applies the rules after rounding, so every
searcher only ever proposes allowed positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bitswarm.boards import Board
from bitswarm.models import BitConfig, LayerSpec, ZooEntry
from bitswarm.models.finn_support import FINN_BITS, finn_narrow

Position = tuple[int, ...]
Variable = tuple[str, str]  # (layer name, "w" | "a")
Narrow = Callable[[str, str, tuple[int, ...]], tuple[int, ...]]  # (layer, kind, candidates) -> kept
Rule = Callable[[BitConfig], "BitConfig | None"]


@dataclass(frozen=True)
class Space:
    variables: tuple[Variable, ...]
    choices: tuple[tuple[int, ...], ...]  # per variable: its sorted bit-widths
    fixed: BitConfig  # bits of everything not searched (e.g. the logits' missing activation)
    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_specs(cls, specs: tuple[LayerSpec, ...], candidates, base: BitConfig, narrow: Narrow | None = None,
                   rules: tuple[Rule, ...] = ()) -> Space:
        variables: list[Variable] = []
        for s in specs:
            if s.has_weight:
                variables.append((s.name, "w"))
            if s.has_act:
                variables.append((s.name, "a"))
        cands = tuple(sorted(set(candidates)))
        choices = []
        for name, kind in variables:
            kept = tuple(sorted(set(narrow(name, kind, cands)))) if narrow else cands
            if not kept:
                raise ValueError(f"no bit-width candidate left for {name}.{kind} (of {cands})")
            choices.append(kept)
        return cls(tuple(variables), tuple(choices), base, tuple(rules))

    @property
    def dim(self) -> int:
        return len(self.variables)

    @property
    def candidates(self) -> tuple[int, ...]:
        """Every bit-width some variable may take (sorted)."""
        return tuple(sorted({b for c in self.choices for b in c}))

    @property
    def highs(self) -> tuple[int, ...]:
        """Per variable, the largest index."""
        return tuple(len(c) - 1 for c in self.choices)

    def describe(self) -> dict[str, list[int]]:
        """``{"layer.kind": [bits...]}``: what the journal signature and the docs show."""
        return {f"{n}.{k}": list(c) for (n, k), c in zip(self.variables, self.choices, strict=True)}

    def to_bits(self, pos: Position) -> BitConfig:
        layers = {n: {"w": b.w, "a": b.a} for n, b in self.fixed.layers}
        for (name, kind), choice, idx in zip(self.variables, self.choices, pos, strict=True):
            layers[name][kind] = choice[idx]
        return BitConfig.from_dict({"layers": layers})

    # the run loop's encoding (bitswarm.search.encoding): evaluate takes the BitConfig
    def decode(self, pos: Position) -> BitConfig:
        return self.to_bits(pos)

    def record(self, pos: Position) -> dict:
        return self.to_bits(pos).to_dict()["layers"]

    def key(self, pos: Position) -> tuple:
        return tuple(pos)

    def save_best(self, pos: Position, run_dir) -> None:
        self.to_bits(pos).save(run_dir / "best_bits.yaml")

    def from_bits(self, bits: BitConfig) -> Position:
        return tuple(c.index(getattr(bits[n], k)) for (n, k), c in zip(self.variables, self.choices, strict=True))

    def nearest(self, bits: BitConfig) -> Position:
        """The position whose bit-widths are closest to ``bits`` (per variable)."""
        out = []
        for (n, k), c in zip(self.variables, self.choices, strict=True):
            b = getattr(bits[n], k)
            out.append(min(range(len(c)), key=lambda i, c=c, b=b: (abs(c[i] - b), c[i])))
        return tuple(out)

    def allowed(self, pos: Position) -> bool:
        bits = self.to_bits(pos)
        return all(rule(bits) is None for rule in self.rules)

    def repair(self, pos: Position) -> Position:
        """Apply the rules until none changes the configuration (each rule moves toward allowed)."""
        for _ in range(4 * max(1, self.dim)):
            bits = self.to_bits(pos)
            fixed = next((f for f in (rule(bits) for rule in self.rules) if f is not None), None)
            if fixed is None:
                return pos
            pos = self.nearest(fixed)
        raise RuntimeError(f"space rules do not converge at {self.to_bits(pos).short()}")

    def clip(self, values) -> Position:
        pos = tuple(int(min(h, max(0, round(float(v))))) for v, h in zip(values, self.highs, strict=True))
        return self.repair(pos) if self.rules else pos


def search_candidates(board: Board, cost: str) -> tuple[int, ...]:
    """The board's bit candidates; those FINN maps (1..8) for a FINN-based cost (per-variable
    narrowing: :func:`build_space`)."""
    if cost in ("finn", "surrogate"):
        return tuple(b for b in board.bit_candidates if b in FINN_BITS)
    return board.bit_candidates


def build_space(entry: ZooEntry, board: Board, cost: str) -> Space:
    """The board's candidates; for a FINN-based cost narrowed per variable to what FINN maps."""
    if cost in ("finn", "surrogate") or board.fpga is not None:  # an FPGA board's winner must go through FINN
        return Space.from_specs(entry.specs, board.bit_candidates, entry.default_bits(), narrow=finn_narrow(entry))
    return Space.from_specs(entry.specs, search_candidates(board, cost), entry.default_bits())
