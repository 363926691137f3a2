"""Per-variable accuracy sensitivity by post-training quantization (forward passes only).

For each search variable, the float weights are loaded into a model whose every variable sits at its
highest candidate except that one, which takes each of its ``levels`` lowest candidates in turn; the
sensitivity is the mean accuracy drop from the all-high model on a few validation images. No training:
``dim * levels + 1`` forward passes over ``split`` (TFC on 512 images: ~1 s).

What it is for (``--algo bitswarm``'s start, search/bitswarm_pso.py): the FINN/bit-operation cost of a
variable says what giving up its bits *saves*; this says what it *loses*. On TFC the input quantizer and
fc0's weights multiply the same MACs, so cost alone cannot tell them apart, but a 2-bit MNIST input
costs nothing in accuracy while 1-2-bit fc0 weights cost 30-80 points before fine-tuning.
"""

from __future__ import annotations

import numpy as np
import torch

from bitswarm.data import Split
from bitswarm.models import ZooEntry
from bitswarm.search.space import Position, Space
from bitswarm.train import evaluate, load_float_weights

#: accuracy drop taken for a variable that loses nothing (keeps the cost / sensitivity ratio finite)
FLOOR = 0.01


def ptq_accuracy(entry: ZooEntry, fp_state: dict, space: Space, pos: Position, split: Split) -> float:
    """Validation accuracy of ``pos`` with the float weights loaded and fresh quantizers, no training."""
    torch.manual_seed(0)  # quantizer parameters start the same way for every position
    model = entry.build(space.to_bits(pos))
    load_float_weights(model, fp_state)
    with torch.no_grad():
        return evaluate(model, split)


def ptq_sensitivity(entry: ZooEntry, fp_state: dict, space: Space, split: Split, levels: int = 3) -> np.ndarray:
    """Per variable, the mean accuracy drop (0..1, at least :data:`FLOOR`) when it alone takes each of
    its ``levels`` lowest candidates and every other variable its highest."""
    top = tuple(space.highs)
    ref = ptq_accuracy(entry, fp_state, space, top, split)
    out = np.empty(space.dim)
    for j in range(space.dim):
        drops = []
        for idx in range(min(levels, space.highs[j])):
            pos = top[:j] + (idx,) + top[j + 1:]
            drops.append(max(0.0, ref - ptq_accuracy(entry, fp_state, space, pos, split)))
        out[j] = max(FLOOR, float(np.mean(drops))) if drops else FLOOR
    return out

