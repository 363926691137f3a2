"""OCNNA filter pruning (Balderas, Lastra, Benitez, Mathematics 12:3032, 2024), Algorithm 1.

For each convolutional layer l and filter m, on a ``D_var`` subset of the training images:

* ``o_m`` = the filter's output map for each image (here: after BN and the quantized ReLU,
  before pooling — the output of a Keras ``Conv2D(activation=...)`` layer, as in the paper);
* ``P_m = PCA(o_m)`` keeping 95% of the variance, per image (rows = samples, columns =
  features of the H x W map); ``F_m = ||P_m||_F`` per image (Eqs. 4-5) — computed from the
  singular values of the centred map: ``||P||_F^2`` = sum of the kept squared singular values;
* ``C_m = CV(F_m) = std / mean`` over the images (Eq. 6): the filter's importance;
* only filters at or above the k-th percentile of C in their layer are kept ("the larger k,
  the more strict": k = 40 keeps ~60%).

Importance is computed from the original model for all layers (Algorithm 1 calls
``model.predict`` on the given model), filters are processed in parallel by a thread pool
(§3.3; torch's SVD releases the GIL), then :mod:`surgery` builds the smaller Brevitas model and
it is fine-tuned. In ResNets only the inner conv of each basic block is pruned (see
:mod:`surgery`), so residual additions stay consistent. RPR (Eq. 7) = NP_S / NP_O.
Deviations (NOTES.md): D_var is the first ``n`` training images, not a class-balanced 10%;
fine-tuning uses this repo's Adam recipe.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bitswarm.data import Split, normalize
from bitswarm.search.compress import surgery

VARIANCE = 0.95


def frobenius_pca(maps: torch.Tensor, variance: float = VARIANCE) -> torch.Tensor:
    """``||PCA(o)||_F`` for each map in ``maps`` (N, H, W), PCA keeping ``variance``."""
    centred = maps - maps.mean(dim=1, keepdim=True)
    s2 = torch.linalg.svdvals(centred.double()) ** 2  # (N, min(H, W)), descending
    total = s2.sum(1, keepdim=True)
    frac = torch.cumsum(s2, 1) / torch.where(total > 0, total, torch.ones_like(total))
    kept = (frac < variance).sum(1, keepdim=True) + 1  # smallest r reaching the variance
    mask = torch.arange(s2.shape[1])[None] < kept
    return torch.sqrt((s2 * mask).sum(1))


def coefficient_of_variation(x: torch.Tensor) -> float:
    mean = float(x.mean())
    return float(x.std(unbiased=False)) / mean if mean > 0 else 0.0


def filter_importance(outputs: torch.Tensor, workers: int = 2, variance: float = VARIANCE) -> np.ndarray:
    """C_m for each filter of a layer output (N, M, H, W); filters are spread over ``workers`` threads."""
    def one(m: int) -> float:
        return coefficient_of_variation(frobenius_pca(outputs[:, m], variance))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return np.array(list(pool.map(one, range(outputs.shape[1]))))


def select(importance: np.ndarray, k: float) -> list[int]:
    """Indices (sorted) of the filters at or above the k-th percentile of importance (at least one)."""
    keep = np.flatnonzero(importance >= np.percentile(importance, k))
    return sorted(keep.tolist()) if keep.size else [int(np.argmax(importance))]


@torch.no_grad()
def layer_outputs(model: nn.Module, convs: list[surgery.Site], dvar: Split,
                  batch_size: int = 250) -> dict[str, torch.Tensor]:
    """Each prunable conv's output after its BN and activation (before pooling) on ``dvar``."""
    model.eval()
    outs: dict[str, list[torch.Tensor]] = {s.conv: [] for s in convs}

    def hook(name):
        return lambda _m, _i, o: outs[name].append(torch.as_tensor(o.value if hasattr(o, "value") else o).detach())

    hooks = [model.get_submodule(s.act).register_forward_hook(hook(s.conv)) for s in convs]
    try:
        for i in range(0, len(dvar), batch_size):
            model(normalize(dvar.x[i:i + batch_size]))
    finally:
        for h in hooks:
            h.remove()
    return {c: torch.cat(v) for c, v in outs.items()}


@dataclass(frozen=True)
class OCNNAResult:
    keep: dict[str, list[int]]
    importance: dict[str, list[float]]
    params_before: int
    params_after: int

    @property
    def rpr(self) -> float:
        """Remaining parameters ratio, Eq. 7: 1 - (NP_O - NP_S) / NP_O."""
        return 1 - (self.params_before - self.params_after) / self.params_before


def ocnna(model: nn.Module, model_name: str, dvar: Split, k: float, workers: int = 2) -> OCNNAResult:
    """Score every conv filter on ``dvar``, keep the top of each layer, shrink ``model`` in place."""
    convs = surgery.sites(model, model_name)
    before = surgery.count_params(model)
    outs = layer_outputs(model, convs, dvar)
    importance = {c: filter_importance(o, workers) for c, o in outs.items()}
    keep = {c: select(v, k) for c, v in importance.items()}
    surgery.apply_keep(model, model_name, keep)
    return OCNNAResult(keep, {c: v.tolist() for c, v in importance.items()}, before, surgery.count_params(model))
