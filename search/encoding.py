"""How the run loop reads a searcher's positions: what ``evaluate`` takes, what the journal records,
the key that memory and resume match on, and the file the best position is saved to.

Two encodings exist: :class:`bitswarm.search.space.Space` (positions are candidate indices of per-layer
bit-widths; ``evaluate`` takes a :class:`~bitswarm.bitconfig.BitConfig`) and :class:`VectorEncoding`
(positions are numeric vectors: the seed methods' weight codes, level choices or k-means centroids;
``evaluate`` takes the vector). Every registered searcher runs in :func:`bitswarm.search.runner.run_search`
through one of them, so every one gets the journal, the memory, resume and the executors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np

from bitswarm import atomic

INLINE_MAX = 64  # positions up to this length are their own key; longer ones are keyed by a digest


class Encoding(Protocol):
    def decode(self, pos): ...

    def record(self, pos) -> dict: ...

    def key(self, pos) -> tuple: ...

    def save_best(self, pos, run_dir: Path) -> None: ...


class VectorEncoding:
    """Numeric vectors of a fixed length; ``dtype`` int for codes and level indices, float for centroids."""

    def __init__(self, size: int, dtype=np.int64):
        self.size, self.dtype = int(size), np.dtype(dtype)

    def decode(self, pos) -> np.ndarray:
        x = np.asarray(pos, self.dtype)
        if x.shape != (self.size,):
            raise ValueError(f"position of shape {x.shape}, expected ({self.size},)")
        return x

    def key(self, pos) -> tuple:
        x = self.decode(pos)
        if self.size <= INLINE_MAX:
            return tuple(x.tolist())
        return ("sha1", hashlib.sha1(x.tobytes()).hexdigest())

    def record(self, pos) -> dict:
        x = self.decode(pos)
        out = {"size": self.size, "key": list(self.key(x))}
        if self.dtype.kind in "iu":
            out["nonzero"] = int(np.count_nonzero(x))
        return out

    def save_best(self, pos, run_dir: Path) -> None:
        with atomic.atomic_path(run_dir / "best.npy") as tmp:
            np.save(tmp, self.decode(pos))
