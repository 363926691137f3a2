"""The registry of the seed methods' optimizers (vector searchers), beside the bit-width searchers'.

``VECTOR_SEARCHERS``: name -> factory ``(task, seed, limit) -> searcher`` with each algorithm's default
settings; ``limit`` is the searcher's own end (fitness evaluations for EDA / GA / local search,
generations for evo, iterations for the PSO). Every one implements the
:class:`~bitswarm.search.searcher.Searcher` protocol over numeric vectors and runs in
:func:`~bitswarm.search.compress.vector_loop.drive`; ``tests/test_contracts.py`` runs one suite over all.
"""

from __future__ import annotations

from bitswarm.search.compress.eda_cc import EDAParams, EDASearcher, GASearcher, GASettings, LocalSearcher, LSSettings
from bitswarm.search.compress.evo_finetune import EvoFinetune, EvoParams
from bitswarm.search.compress.pso_kmeans import CentroidPSO, PSOParams
from bitswarm.search.compress.vector_loop import VectorTask


def _levels(task: VectorTask) -> int:
    return int(task.hi.max()) + 1


VECTOR_SEARCHERS = {
    "evo": lambda task, seed, limit: EvoFinetune(task.start, task.ratio if task.ratio is not None
                                                 else task.start.astype(float), task.lo, task.hi, EvoParams(),
                                                 seed, generations=limit),
    "eda-cc": lambda task, seed, limit: EDASearcher(task, _levels(task), EDAParams(), seed, limit, cc=True),
    "eda": lambda task, seed, limit: EDASearcher(task, _levels(task), EDAParams(), seed, limit, cc=False),
    "ga-codes": lambda task, seed, limit: GASearcher(task, _levels(task), GASettings(), seed, limit),
    "ls-codes": lambda task, seed, limit: LocalSearcher(task, _levels(task), LSSettings(), seed, limit),
    "pso-kmeans": lambda task, seed, limit: CentroidPSO(task, PSOParams(iters=limit), seed),
}
#: what each vector searcher's positions are: level indices in [0, levels), codes in [lo, hi], or floats
VECTOR_KIND = {"evo": "int", "eda-cc": "int", "eda": "int", "ga-codes": "int", "ls-codes": "int", "pso-kmeans": "float"}
