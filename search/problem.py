"""The mixed-precision problem: bits -> (fitness, violation, cost).

Fitness is validation accuracy after a short quantization-aware fine-tune from the float
checkpoint (§5.3.1: 2 epochs, SGD lr 0.01, momentum 0.9, weight decay 5e-3; scaled here by
``eval_recipe``); the violation is the summed relative excess of the constraints over the cost
that a :mod:`bitswarm.hw` cost model returns. The test split is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bitswarm.boards import Board
from bitswarm.data import Dataset
from bitswarm.hw.cost import Constraint, CostModel, total_violation
from bitswarm.models import BitConfig, ZooEntry
from bitswarm.train import Recipe, evaluate, load_float_weights, train

EVAL_RECIPE = Recipe(epochs=2, lr=0.01, batch_size=128, weight_decay=5e-3, optimizer="sgd")


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

    def cost(self, bits: BitConfig):
        cost = self.cost_model(self.entry, bits, self.board)
        return cost, total_violation(self.constraints, cost)

    def evaluate(self, bits: BitConfig) -> tuple[float, float, dict]:
        cost, violation = self.cost(bits)
        torch.manual_seed(self.seed)
        model = self.entry.build(bits)
        load_float_weights(model, self.fp_state)
        model = train(model, self.data, self.eval_recipe, self.seed, None, progress=False)
        fitness = evaluate(model, self.data.val.subset(self.val_samples))
        return fitness, violation, dict(cost.values)


def importance_norms(entry: ZooEntry, fp_state: dict, variables) -> np.ndarray:
    """Eq. 6 per variable: mean over filters of the L2 norm of the layer's float weights."""
    norms = {}
    for s in entry.specs:
        w = fp_state.get(f"{s.name}.weight")
        if s.has_weight and w is not None:
            norms[s.name] = float(w.flatten(1).norm(dim=1).mean())
    fallback = float(np.mean(list(norms.values()))) if norms else 1.0
    return np.array([norms.get(name, fallback) for name, _ in variables])
