"""One call for a whole search: float model, problem, searcher, run, final fine-tune, test accuracy."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bitswarm.boards import Board
from bitswarm.data import Dataset
from bitswarm.env import Environment
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Constraint, get_cost_model
from bitswarm.models import ZooEntry
from bitswarm.search.bbpso import BBPSO, BBPSOSettings, RandomSearch, layer_importance
from bitswarm.search.ga import GeneticSearch
from bitswarm.search.problem import EVAL_RECIPE, FitnessMemo, QuantProblem, importance_norms
from bitswarm.search.runner import run_search
from bitswarm.search.space import Space
from bitswarm.train import Recipe, evaluate

#: name -> (ask/tell class, settings it runs with); the -IN/-SCP/-LSP names are the paper's ablations
SEARCHERS = {
    "bbpso-q": (BBPSO, lambda s: s),
    "bbpso-q-IN": (BBPSO, lambda s: replace(s, importance_init=False)),
    "bbpso-q-SCP": (BBPSO, lambda s: replace(s, screening=False)),
    "bbpso-q-LSP": (BBPSO, lambda s: replace(s, local_search=False)),
    "bbpso": (BBPSO, lambda s: replace(s, importance_init=False, local_search=False, update="eq2")),
    "ga": (GeneticSearch, lambda s: replace(s, importance_init=False, local_search=False)),
    "random": (RandomSearch, lambda s: replace(s, importance_init=False, local_search=False)),
}


def make_searcher(algo: str, space: Space, settings: BBPSOSettings, seed: int, importance):
    if algo not in SEARCHERS:
        raise ConfigError("--algo", "algo", f"unknown searcher {algo!r}", ", ".join(SEARCHERS))
    cls, adapt = SEARCHERS[algo]
    return cls(space, adapt(settings), seed, importance)


@dataclass(frozen=True)
class SearchSpec:
    algo: str = "bbpso-q"
    settings: BBPSOSettings = BBPSOSettings()
    cost: str = "bitops"
    constraints: tuple[Constraint, ...] = ()
    eval_recipe: Recipe = EVAL_RECIPE
    val_samples: int | None = 2000
    final_recipe: Recipe | None = None  # the winner's long fine-tune (None: skip)
    seed: int = 0
    budget: int | None = None  # max evaluations (termination between rounds); None: run all iterations
    workers: int | None = 1  # evaluations of one round in parallel: > 1 = local process pool, None = per core
    ray_address: str | None = None  # Ray cluster ("local" = a local Ray instance) instead of the pool
    worker_threads: int = 1  # torch threads per parallel worker
    eval_seed: int | None = None  # seed of every evaluation's fine-tune (None: the run's seed)
    fitness_memo: str | None = None  # SQLite file shared by runs with the same eval_seed (see FitnessMemo)
    recheck: bool = True  # FINN-based cost: estimate the exported winner again (the deploy's FINN step does it)


def check_constraints(cost_name: str, constraints: tuple[Constraint, ...]) -> None:
    model = get_cost_model(cost_name)
    for c in constraints:
        if c.quantity not in model.provides:
            raise ConfigError("--constraint", c.quantity, f"cost model '{cost_name}' does not provide it",
                              ", ".join(model.provides))


def search_candidates(board: Board, cost: str) -> tuple[int, ...]:
    """The board's bit candidates; 2..8 for a FINN-based cost. FINN reads a 1-bit activation as
    bipolar and maps it only in front of a binary (XNOR) layer: in mixed configurations its HLS
    conversion rejects it ("MultiThreshold out_scale must be 1"), so one shared candidate set
    leaves 1 out (see NOTES.md)."""
    if cost in ("finn", "surrogate"):
        return tuple(b for b in board.bit_candidates if b >= 2)
    return board.bit_candidates


def cost_options(spec: SearchSpec) -> dict:
    """FINN (and its surrogate, calibrated per folding policy) folds for the constraint: the cheapest
    folding that meets a latency limit."""
    latency = [c.limit for c in spec.constraints if c.quantity == "latency_ms"]
    return {"max_latency_ms": min(latency)} if spec.cost in ("finn", "surrogate") and latency else {}


def search(entry: ZooEntry, data: Dataset, board: Board, fp_model, spec: SearchSpec, run_dir: Path,
           env: Environment | None = None, progress: bool = True, on_eval=None, arch: dict | None = None) -> dict:
    """Search ``entry``'s per-layer bits from the float weights of ``fp_model``; with ``arch`` (the
    ``arch.json`` of a zoo model or a compression stage) the winner is also written to
    ``run_dir/winner`` as a compression-stage directory, so ``bitswarm finetune|cluster --from`` and
    ``--export`` continue from it."""
    if spec.algo not in SEARCHERS:
        raise ConfigError("--algo", "algo", f"unknown searcher {spec.algo!r}", ", ".join(SEARCHERS))
    check_constraints(spec.cost, spec.constraints)
    if spec.cost in ("finn", "surrogate"):  # what FINN cannot map is found before any long work
        from bitswarm.models.finn_support import check_finn_support

        check_finn_support(entry.build(entry.default_bits()))
    fp_state = {k: v.detach().clone() for k, v in fp_model.state_dict().items()}
    problem = QuantProblem(entry, data, fp_state, board, get_cost_model(spec.cost, **cost_options(spec)),
                           spec.constraints,
                           spec.eval_recipe, spec.val_samples,
                           spec.seed if spec.eval_seed is None else spec.eval_seed,
                           FitnessMemo(spec.fitness_memo) if spec.fitness_memo else None)
    space = Space.from_specs(entry.specs, search_candidates(board, spec.cost), entry.default_bits())
    imp = layer_importance(importance_norms(entry, fp_state, space.variables), spec.settings.alpha,
                           spec.settings.beta)
    searcher = make_searcher(spec.algo, space, spec.settings, spec.seed, imp)
    settings = searcher.s
    signature = {"model": entry.name, "board": board.name, "algo": spec.algo, "settings": repr(settings),
                 "cost": spec.cost, "constraints": [c.describe() for c in spec.constraints], "seed": spec.seed,
                 "eval_recipe": spec.eval_recipe.key(), "eval_seed": spec.eval_seed,
                 "candidates": space.describe(), "budget": spec.budget}
    from bitswarm.search.executor import make_executor

    executor = make_executor(problem.evaluate, spec.workers, spec.ray_address, spec.worker_threads)
    result = run_search(space, searcher, problem.evaluate, run_dir, signature, screening=settings.screening,
                        seed=spec.seed, progress=progress, on_eval=on_eval, budget=spec.budget, executor=executor)
    result["fp_val_acc"] = evaluate(fp_model, data.val.subset(spec.val_samples))
    from bitswarm.models import BitConfig
    from bitswarm.train import load_float_weights, train

    torch.manual_seed(spec.seed)
    best_bits = BitConfig.from_dict({"layers": result["best"]["bits"]})
    best = entry.build(best_bits)
    load_float_weights(best, fp_state)
    if spec.final_recipe is not None:
        best = train(best, data, spec.final_recipe, spec.seed, None, progress=progress, desc="final fine-tune")
        result["final"] = {"val_acc": evaluate(best, data.val), "test_acc": evaluate(best, data.test),
                           "fp_test_acc": evaluate(fp_model, data.test), "recipe": spec.final_recipe.key()}
    if spec.recheck and spec.cost in ("finn", "surrogate") and board.fpga is not None:
        result["recheck"] = recheck_with_finn(best, best_bits, entry, board, spec, env)
    if "final" in result or "recheck" in result:
        (run_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    if arch is not None:
        from bitswarm.search.compress.artifacts import save_result

        meta = {"method": "search", "algo": spec.algo, "cost": spec.cost, "seed": spec.seed,
                "constraints": [c.describe() for c in spec.constraints], "search_val": result["best"]["fitness"],
                "final": result.get("final"), "start": arch.get("start", arch["model"])}
        save_result(run_dir / "winner", best.eval(), best_bits, {k: v for k, v in arch.items() if k != "start"},
                    meta)
        result["winner_dir"] = str(run_dir / "winner")
    return result


def recheck_with_finn(model, bits, entry: ZooEntry, board: Board, spec: SearchSpec,
                      env: Environment | None) -> dict:
    """FINN's estimate of the *exported* winner (its QONNX file, not the cache), with the search's
    folding policy: confirms that what will be deployed meets the constraints the search saw."""
    import tempfile

    from bitswarm.env import read_environment
    from bitswarm.flows.export import export_qonnx
    from bitswarm.hw.cost import Cost, total_violation
    from bitswarm.hw.cost_bitops import bit_metrics
    from bitswarm.hw.cost_finn import FinnCost
    from bitswarm.hw.finn_estimate import finn_estimate_onnx

    cache = (env or read_environment()).cache_dir
    fps = FinnCost(cache_dir=cache, **cost_options(replace(spec, cost="finn"))).target_fps
    with tempfile.TemporaryDirectory(prefix="bitswarm-recheck-") as tmp:
        onnx = export_qonnx(model.eval(), entry.input_shape, Path(tmp) / "winner.qonnx.onnx").path
        est = finn_estimate_onnx(onnx, board, cache, target_fps=fps, entry=entry)
    cost = Cost(est.source, {**est.values, **bit_metrics(entry, bits).values})
    return {"source": "finn-estimate of the exported QONNX winner", "target_fps": fps, "values": dict(cost.values),
            "violation": total_violation(spec.constraints, cost)}


def small_search_spec(opts: dict, constraints: tuple[Constraint, ...], cost: str, seed: int, **kw) -> SearchSpec:
    """A small-budget search (the deploy flow's and the compress flow's). ``opts`` may set algo,
    particles, iters, eval_epochs, eval_train and val_samples; ``kw`` other ``SearchSpec`` fields."""
    return SearchSpec(algo=opts.get("algo", "bbpso-q"),
                      settings=BBPSOSettings(particles=opts.get("particles", 6), iterations=opts.get("iters", 4),
                                             gamma=2),
                      cost=cost, constraints=constraints,
                      eval_recipe=replace(EVAL_RECIPE, epochs=opts.get("eval_epochs", 1),
                                          max_train=opts.get("eval_train", 4000)),
                      val_samples=opts.get("val_samples", 2000), seed=seed, **kw)


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
