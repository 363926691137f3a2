"""The small search of the default deploy: bits for the model under the board's constraint.

Kept apart from ``deploy.py`` so the search engine (``bitswarm.search``) is one seam.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from bitswarm.hw.cost import Constraint
from bitswarm.models import ZooEntry
from bitswarm.search.api import search, search_candidates, small_search_spec


def search_bits(cfg, pkg: Path):
    """Return ``(BitConfig, search summary dict | None)``."""
    from bitswarm.workflow import resolve_model_and_data

    entry, _, _ = resolve_model_and_data(cfg.model, cfg.dataset, cfg.data_dir, cfg.env, cfg.weights)
    return run_small_search(cfg, entry, pkg)


def run_small_search(cfg, entry: ZooEntry, pkg: Path):
    """The deploy flow's search: a small budget under the board's default constraint."""
    from bitswarm.models import BitConfig
    from bitswarm.workflow import fp_recipe, resolve_model_and_data, scaled, train_float

    _, data, _ = resolve_model_and_data(cfg.model, cfg.dataset, cfg.data_dir, cfg.env, cfg.weights)
    recipe = scaled(fp_recipe(entry.dataset, entry.name), cfg.fp_epochs)
    fp = train_float(entry, data, cfg.seed, recipe, cfg.env, progress=True)
    opts = cfg.search
    limit = opts.get("max_avg_bits", 3.0)
    constraints: tuple[Constraint, ...] = (Constraint("avg_bits", limit),)
    cost = opts.get("cost") or "bitops"
    if cost == "finn" and cfg.board.fpga is None:
        cost = "bitops"  # a CPU-only board: the bit metrics alone
    if cost == "finn":
        from bitswarm.models.finn_support import UnsupportedForFinnError, check_finn_support

        try:
            check_finn_support(entry.build(entry.default_bits()))
        except UnsupportedForFinnError:
            cost = "bitops"  # the FINN step reports why; the model still deploys through TVM
    if cost == "finn":  # FINN's estimate must also fit the board within FINN's own utilisation limit
        constraints += (Constraint("lut", cfg.board.fpga.limit("lut")),)
    spec = small_search_spec(opts, constraints, cost, cfg.seed, recheck=False)
    # the deploy searches 2..8 bits whatever the cost, so a CPU-only fallback finds the same kind of winner
    board = replace(cfg.board, bit_candidates=search_candidates(cfg.board, "finn"))
    result = search(entry, data, board, fp.model, spec, pkg / "search", cfg.env)
    history = json.loads((pkg / "search" / "history.json").read_text())
    from bitswarm.search.journal import Journal

    j = Journal(pkg / "search" / "journal.sqlite", result["signature"])
    evals = [{"fitness": r.fitness, "violation": r.violation, "cost": r.cost} for r in j.records]
    j.close()
    summary = {"algo": spec.algo, "constraint": " and ".join(c.describe() for c in constraints), "cost": cost,
               "quantity": "avg_bits", "limit": limit,
               "history": history, "evaluations": evals, "best": result["best"]}
    return BitConfig.from_dict({"layers": result["best"]["bits"]}), summary
