"""The mixed-precision problem: bits -> (fitness, violation, cost).

Fitness is validation accuracy: one-shot (the configuration inherited from a trained supernet, BatchNorm
re-estimated: ``QuantProblem.oneshot``) or after a short quantization-aware fine-tune from the float
checkpoint (§5.3.1: 2 epochs, SGD lr 0.01, momentum 0.9, weight decay 5e-3; scaled here by
``eval_recipe``); the violation is the summed relative excess of the constraints over the cost
that a :mod:`bitswarm.hw` cost model returns. The test split is never touched.

The cost comes first: a configuration that violates a constraint is not fine-tuned (Deb's rule
never reads the fitness of an infeasible candidate); its fitness is :data:`UNTRAINED` and its
:class:`Evaluation` says ``trained=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from bitswarm.boards import Board
from bitswarm.cachekey import entry_digest, state_digest
from bitswarm.data import Dataset
from bitswarm.hw.cost import Constraint, CostModel, total_violation
from bitswarm.models import BitConfig, ZooEntry
from bitswarm.train import Recipe, evaluate, load_float_weights, train

EVAL_RECIPE = Recipe(epochs=2, lr=0.01, batch_size=128, weight_decay=5e-3, optimizer="sgd")

#: Fitness of a candidate that was not trained (infeasible). -inf rather than NaN: it orders below
#: every accuracy if anything ever compares it, and SQLite stores it (NaN would become NULL);
#: the JSON files write it as null (see :func:`bitswarm.search.runner.write_json`).
UNTRAINED = float("-inf")


class Evaluation(NamedTuple):
    """What ``QuantProblem.evaluate`` returns; a plain ``(fitness, violation, cost)`` also works
    with the runner and counts as trained."""

    fitness: float
    violation: float
    cost: dict
    trained: bool = True


class FitnessMemo:
    """Validation accuracy by (model, bits, evaluation recipe, seed), shared by runs in one SQLite file.

    Fitness does not depend on the constraint or on the searcher, so runs of a comparison that
    use the same evaluation seed (common random numbers) share it: a configuration two runs both
    visit is trained once. Safe for concurrent worker processes (WAL, one row per key).
    """

    def __init__(self, path):
        self.path = str(path)
        self._db = None

    def _conn(self):
        if self._db is None:  # opened lazily: the memo is pickled into worker processes
            import sqlite3

            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS fitness (key TEXT PRIMARY KEY, value REAL NOT NULL)")
        return self._db

    def get(self, key: str) -> float | None:
        row = self._conn().execute("SELECT value FROM fitness WHERE key=?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def put(self, key: str, value: float) -> None:
        self._conn().execute("INSERT OR IGNORE INTO fitness VALUES (?, ?)", (key, value))

    def __getstate__(self):
        return {"path": self.path, "_db": None}


@dataclass
class QuantProblem:
    entry: ZooEntry
    data: Dataset
    fp_state: dict
    board: Board
    cost_model: CostModel
    constraints: tuple[Constraint, ...]
    eval_recipe: Recipe = EVAL_RECIPE
    val_samples: int | None = None
    seed: int = 0
    memo: FitnessMemo | None = None
    oneshot: object | None = None  # a :class:`bitswarm.search.oneshot.OneShot`: score by the supernet, no training

    def __post_init__(self):
        self.fp_tag = state_digest(self.fp_state)[:16]  # which float checkpoint the memoised fitness started from

    def cost(self, bits: BitConfig):
        cost = self.cost_model(self.entry, bits, self.board)
        return cost, total_violation(self.constraints, cost)

    def evaluate(self, bits: BitConfig) -> Evaluation:
        cost, violation = self.cost(bits)
        if violation > 0:  # infeasible: no fine-tune, no memo entry
            return Evaluation(UNTRAINED, violation, dict(cost.values), False)
        recipe = self.oneshot.tag if self.oneshot is not None else self.eval_recipe.key()
        key = "|".join(map(str, (entry_digest(self.entry), self.fp_tag, bits.key(), recipe, self.val_samples,
                                  self.seed)))
        fitness = self.memo.get(key) if self.memo else None
        if fitness is None:
            fitness = self.fine_tune_and_validate(bits)
            if self.memo:
                self.memo.put(key, fitness)
        return Evaluation(fitness, violation, dict(cost.values), True)

    def fine_tune_and_validate(self, bits: BitConfig) -> float:
        if self.oneshot is not None:  # inherit from the supernet, re-estimate BatchNorm, validate
            return self.oneshot.score(bits, self.data.val.subset(self.val_samples))
        torch.manual_seed(self.seed)
        model = self.entry.build(bits)
        load_float_weights(model, self.fp_state)
        model = train(model, self.data, self.eval_recipe, self.seed, None, progress=False)
        return evaluate(model, self.data.val.subset(self.val_samples))


def importance_norms(entry: ZooEntry, fp_state: dict, variables) -> np.ndarray:
    """Eq. 6 per variable: mean over filters of the L2 norm of the layer's float weights."""
    norms = {}
    for s in entry.specs:
        w = fp_state.get(f"{s.name}.weight")
        if s.has_weight and w is not None:
            norms[s.name] = float(w.flatten(1).norm(dim=1).mean())
    fallback = float(np.mean(list(norms.values()))) if norms else 1.0
    return np.array([norms.get(name, fallback) for name, _ in variables])
