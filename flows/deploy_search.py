"""The small search of the default deploy: bits for the model under the board's constraint.

Kept apart from ``deploy.py`` so the search engine (``bitswarm.search``) is one seam.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from bitswarm.hw.cost import Constraint
from bitswarm.models import ZooEntry
from bitswarm.search.api import search, small_search_spec
from bitswarm.search.oneshot import resolve_fitness
from bitswarm.search.space import search_candidates


@dataclass(frozen=True)
class DeployProfile:
    """What a deploy asks of a model by default (each field can be overridden on the command line)."""

    target_fps: int = 10000  # the throughput FINN folds for, in the search's cost and in the build
    max_avg_bits: float | None = 3.0  # average operation bits limit of the search (None: no such limit)
    board_limits: tuple[str, ...] = ("lut",)  # FINN's estimate within the board's FINN utilisation limits
    cost: str = "finn"  # finn, or surrogate (the calibrated one; finn when the model has no calibration)
    budget: int | None = None  # trained evaluations of the search (None: particles x iterations)
    eval_train: int = 4000  # training images of each candidate's short fine-tune
    verify_samples: int = 1000  # test images FINN's graphs are checked on
    algo: str = "bbpso-q"  # the searcher


#: CNV on the PYNQ-Z2 (issue 15): FINN's cnv-w1a1 throughput target, the board's LUT and BRAM limits, the
#: shipped surrogate (microseconds per cost; real FINN re-checks the winner in the build), and a verification
#: subset that fits the time (FINN's CNV graphs run at ~0.35 s per image and level in Python); bitswarm's
#: searcher, whose repaired start is feasible where BBPSO-Quantizer's importance start finds nothing feasible
#: under CNV's BRAM limit (BENCHMARKS.md, issue 15).
PROFILES = {"cnv": DeployProfile(target_fps=3000, max_avg_bits=None, board_limits=("lut", "bram18"),
                                 cost="surrogate", budget=24, eval_train=5000, verify_samples=200, algo="bitswarm")}


def profile_for(model: str) -> DeployProfile:
    return PROFILES.get(model, DeployProfile())


def run_small_search(cfg, entry: ZooEntry, data, pkg: Path):
    """The deploy flow's search: a small budget under the board's default constraint. Returns
    ``(BitConfig, search summary dict)``."""
    from bitswarm.models import BitConfig
    from bitswarm.workflow import fp_recipe, scaled, train_float

    recipe = scaled(fp_recipe(entry.dataset, entry.name), cfg.fp_epochs)
    fp = train_float(entry, data, cfg.seed, recipe, cfg.env, progress=True)
    opts, prof = cfg.search, cfg.profile()
    limit = opts.get("max_avg_bits", prof.max_avg_bits)
    constraints: tuple[Constraint, ...] = (Constraint("avg_bits", limit),) if limit is not None else ()
    cost = _cost(opts.get("cost") or "bitops", entry, cfg)
    if cost in ("finn", "surrogate"):  # FINN's estimate must also fit the board within FINN's own limits
        constraints += tuple(Constraint(q, cfg.board.fpga.limit(q)) for q in prof.board_limits)
    if not constraints:
        raise ValueError(f"the deploy profile of {entry.name} has no constraint without FINN")
    budget = opts.get("budget", prof.budget)
    # the deploy searches 2..8 bits whatever the cost, so a CPU-only fallback finds the same kind of winner
    board = replace(cfg.board, bit_candidates=search_candidates(cfg.board, "finn"))
    fitness, line = resolve_fitness(opts.get("fitness", "auto"), entry, board, data, fp.model.state_dict(),
                                    cfg.env.cache_dir)
    print(line)
    spec = small_search_spec({"eval_train": prof.eval_train, "algo": prof.algo, **opts}, constraints, cost, cfg.seed,
                             recheck=False, target_fps=cfg.fps(), budget=budget, fitness=fitness)
    result = search(entry, data, board, fp.model, spec, pkg / "search", cfg.env)
    history = json.loads((pkg / "search" / "history.json").read_text())
    from bitswarm.search.journal import Journal

    j = Journal(pkg / "search" / "journal.sqlite", result["signature"])
    evals = [{"fitness": r.fitness, "violation": r.violation, "cost": r.cost} for r in j.records]
    j.close()
    summary = {"algo": spec.algo, "fitness": fitness,
               "constraint": " and ".join(c.describe() for c in constraints), "cost": cost,
               "quantity": constraints[0].quantity, "limit": constraints[0].limit,
               "target_fps": spec.target_fps, "budget": budget,
               "history": history, "evaluations": evals, "best": result["best"]}
    return BitConfig.from_dict({"layers": result["best"]["bits"]}), summary


def _cost(cost: str, entry: ZooEntry, cfg) -> str:
    """The search's cost model: a FINN cost needs an FPGA and a model FINN maps (else the bit metrics),
    the surrogate its calibration (else real FINN)."""
    if cost in ("finn", "surrogate") and cfg.board.fpga is None:
        return "bitops"  # a CPU-only board: the bit metrics alone
    if cost in ("finn", "surrogate"):
        from bitswarm.models.finn_support import UnsupportedForFinnError, check_finn_support

        try:
            check_finn_support(entry.build(entry.default_bits()))
        except UnsupportedForFinnError:
            return "bitops"  # the FINN step reports why; the model still deploys through TVM
    if cost == "surrogate":
        from bitswarm.hw.cost_surrogate import find_default

        if not find_default(cfg.env.cache_dir, entry.name, cfg.board.name, cfg.fps()).exists():
            print(f"no FINN surrogate for {entry.name} on {cfg.board.name} at {cfg.fps()} FPS: the search uses "
                  "real FINN")
            return "finn"
    return cost
