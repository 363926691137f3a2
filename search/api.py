"""One call for a whole search: float model, problem, searcher, run, final fine-tune, test accuracy."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from bitswarm.boards import Board
from bitswarm.cachekey import digest, entry_digest
from bitswarm.data import Dataset
from bitswarm.env import Environment
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import SHORTCUTS, Constraint, cost_provides, get_cost_model, needs_cache, require_cache_dir
from bitswarm.models import ZooEntry
from bitswarm.search.bbpso import BBPSO, BBPSOSettings, RandomSearch, layer_importance
from bitswarm.search.bitswarm_pso import BitswarmPSO, cost_weights
from bitswarm.search.ga import GeneticSearch
from bitswarm.search.oneshot import how_to_train, open_oneshot
from bitswarm.search.problem import EVAL_RECIPE, FitnessMemo, QuantProblem, importance_norms
from bitswarm.search.runner import run_search
from bitswarm.search.sensitivity import ptq_sensitivity
from bitswarm.search.space import Space, build_space
from bitswarm.train import Recipe, evaluate

RECHECK_VERIFY_SAMPLES = 200  # validation images the re-checked winner's FINN build is verified on

#: name -> (ask/tell class, settings it runs with); the -IN/-SCP/-LSP names are the paper's ablations
SEARCHERS = {
    "bitswarm": (BitswarmPSO, lambda s: s),  # ours, not the paper's (search/bitswarm_pso.py)
    "bbpso-q": (BBPSO, lambda s: s),
    "bbpso-q-IN": (BBPSO, lambda s: replace(s, importance_init=False)),
    "bbpso-q-SCP": (BBPSO, lambda s: replace(s, screening=False)),
    "bbpso-q-LSP": (BBPSO, lambda s: replace(s, local_search=False)),
    "bbpso": (BBPSO, lambda s: replace(s, importance_init=False, local_search=False, update="eq2")),
    "ga": (GeneticSearch, lambda s: replace(s, importance_init=False, local_search=False)),
    "random": (RandomSearch, lambda s: replace(s, importance_init=False, local_search=False)),
}


def make_searcher(algo: str, space: Space, settings: BBPSOSettings, seed: int, importance, probe=None,
                  weights=None):
    """The registered searcher ``algo``; ``probe`` (position -> violation, no training) and ``weights``
    (per-variable cost shares) reach the searchers that use them (``bitswarm``)."""
    if algo not in SEARCHERS:
        raise ConfigError("--algo", "algo", f"unknown searcher {algo!r}", ", ".join(SEARCHERS))
    cls, adapt = SEARCHERS[algo]
    if issubclass(cls, BitswarmPSO):
        return cls(space, adapt(settings), seed, importance, probe=probe, weights=weights)
    return cls(space, adapt(settings), seed, importance)


#: validation images of the ``bitswarm`` variant's post-training-quantization sensitivity (forward passes only)
SENSITIVITY_IMAGES = 512


def start_prior(algo: str, entry: ZooEntry, fp_state: dict, space: Space, settings: BBPSOSettings,
                data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(importance, weights)`` of the initial swarm. The paper's: Eq. 5 of Eq. 6's norms, with the
    variables' cost weights. The ``bitswarm`` variant's: Eq. 5 of each variable's accuracy sensitivity
    (search/sensitivity.py), and as weights the cost each variable saves per accuracy it loses, so the
    repaired start gives up cheap-to-lose, costly bits first."""
    weights = cost_weights(entry, space.variables)
    if issubclass(SEARCHERS[algo][0], BitswarmPSO):
        sens = ptq_sensitivity(entry, fp_state, space, data.val.subset(SENSITIVITY_IMAGES))
        return layer_importance(sens, BitswarmPSO.alpha, settings.beta), weights / sens
    return layer_importance(importance_norms(entry, fp_state, space.variables), settings.alpha, settings.beta), weights


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
    target_fps: int | None = None  # FINN-based cost: the throughput FINN folds for (None: 10,000 or the latency's)
    fitness: str = "qat"  # "qat" (short fine-tune per candidate) or "oneshot" (the trained supernet scores it)


def check_constraints(cost_name: str, constraints: tuple[Constraint, ...]) -> None:
    provides = cost_provides(cost_name)
    for c in constraints:
        if c.quantity not in provides:
            raise ConfigError("--constraint", c.quantity, f"cost model '{cost_name}' does not provide it",
                              ", ".join(provides))


def cost_options(spec: SearchSpec, env: Environment | None = None) -> dict:
    """The cost model's options: its cache directory (from ``env``) where it keeps one; for FINN (and
    its surrogate, calibrated per folding policy) the folding: the cheapest that meets a latency limit."""
    out = {"cache_dir": env.cache_dir if env else None} if needs_cache(spec.cost) else {}
    if spec.cost not in ("finn", "surrogate"):
        return out
    if spec.target_fps:
        return {**out, "target_fps": spec.target_fps}
    latency = [c.limit for c in spec.constraints if c.quantity == "latency_ms"]
    return {**out, "max_latency_ms": min(latency)} if latency else out


def constraint_flag(quantity: str) -> str:
    """The command-line flag of a constraint on ``quantity``: its ``--max-*`` shortcut, else ``--constraint``."""
    return next(("--" + k.replace("_", "-") for k, q in SHORTCUTS.items() if q == quantity), "--constraint")


def reachable_minimum(entry: ZooEntry, board: Board, spec: SearchSpec, space: Space, cost_model=None,
                      env: Environment | None = None) -> dict:
    """Per constrained quantity: (the smallest value the space reaches, where).

    Bit metrics (Eq. 9-11, which bitops, finn and surrogate compute exactly) are monotone in every
    variable, all in one direction (avg_bits, bops, weight_bits and weight_avg_bits grow with each
    bit-width; compression_ratio = 32 / weight_avg_bits shrinks), so their minimum over the space is
    at its lowest or its highest corner: exact. Other quantities (hardware costs): the smallest cost
    among a few cheap configurations (:func:`_cheap_configurations`), an upper bound of the minimum."""
    from bitswarm.hw.cost_bitops import BitOpsCost, bit_metrics

    lowest = tuple(0 for _ in range(space.dim))
    corners = {"every variable at its lowest candidate": bit_metrics(entry, space.to_bits(lowest)),
               "every variable at its highest candidate": bit_metrics(entry, space.to_bits(space.highs))}
    out, hw = {}, None
    for c in spec.constraints:
        if c.quantity in BitOpsCost.provides and spec.cost in ("bitops", "finn", "surrogate"):
            out[c.quantity] = min((cost[c.quantity], where) for where, cost in corners.items())
            continue
        if hw is None:
            hw = _cheap_costs(entry, board, spec, space, cost_model, env)
        out[c.quantity] = min((cost[c.quantity], f"{spec.cost} cost of {where}") for where, cost in hw)
    return out


def _cheap_configurations(space: Space) -> list[tuple[str, tuple[int, ...]]]:
    """Every variable at its lowest candidate, and near-uniform 1..4-bit configurations: a hardware cost
    (FINN folds and picks implementations per bit-width) need not be smallest at the lowest corner."""
    from bitswarm.models import BitConfig

    out = [("the cheapest configuration (every variable at its lowest candidate)", tuple(0 for _ in range(space.dim)))]
    for b in (1, 2, 3, 4):
        layers = {n: {"w": b, "a": b} for n, _ in space.fixed.layers}
        pos = space.nearest(BitConfig.from_dict({"layers": layers}))
        if all(pos != p for _, p in out):
            out.append((f"the configuration nearest to {b} bits everywhere", pos))
    return [(w, space.repair(p) if space.rules else p) for w, p in out]


def _cheap_costs(entry: ZooEntry, board: Board, spec: SearchSpec, space: Space, cost_model=None,
                 env: Environment | None = None):
    """``[(where, Cost)]`` of :func:`_cheap_configurations`; a cost model made here is closed again
    (e.g. the local RPC server of a TVM cost)."""
    model = cost_model or get_cost_model(spec.cost, **cost_options(spec, env))
    try:
        return [(where, model(entry, space.to_bits(pos), board)) for where, pos in _cheap_configurations(space)]
    finally:
        if cost_model is None and hasattr(model, "close"):
            model.close()


def check_feasible(entry: ZooEntry, board: Board, spec: SearchSpec, cost_model=None,
                   env: Environment | None = None) -> Space:
    """Before any training: each constraint can be met somewhere in the space, else a ConfigError naming
    its flag, its limit and the best reachable value. Returns the space."""
    space = build_space(entry, board, spec.cost)
    reachable = reachable_minimum(entry, board, spec, space, cost_model, env)
    for c in spec.constraints:
        best, where = reachable[c.quantity]
        if best > c.limit:
            raise ConfigError(constraint_flag(c.quantity), c.quantity,
                              f"no configuration of the search space meets {c.describe()}: the smallest reachable "
                              f"{c.quantity} is {best:.4g} ({where})", f"a limit >= {best:.4g}")
    return space


def _prepare(entry: ZooEntry, board: Board, spec: SearchSpec, env: Environment | None):
    """Everything that can refuse the search, before any training: (space, cost model)."""
    if spec.algo not in SEARCHERS:
        raise ConfigError("--algo", "algo", f"unknown searcher {spec.algo!r}", ", ".join(SEARCHERS))
    check_constraints(spec.cost, spec.constraints)
    if spec.cost in ("finn", "surrogate"):  # what FINN cannot map is found before any long work
        from bitswarm.models.finn_support import check_finn_support

        check_finn_support(entry.build(entry.default_bits()))
    cost_model = get_cost_model(spec.cost, **cost_options(spec, env))
    return check_feasible(entry, board, spec, cost_model, env), cost_model


def search(entry: ZooEntry, data: Dataset, board: Board, fp_model, spec: SearchSpec, run_dir: Path,
           env: Environment | None = None, progress: bool = True, on_eval=None, arch: dict | None = None) -> dict:
    """Search ``entry``'s per-layer bits from the float weights of ``fp_model``; with ``arch`` (the
    ``arch.json`` of a zoo model or a compression stage) the winner is also written to
    ``run_dir/winner`` as a compression-stage directory, so ``bitswarm finetune|cluster --from`` and
    ``--export`` continue from it. A constraint no configuration can meet is refused before the
    search (:func:`check_feasible`); a search that ends without a feasible configuration returns
    ``feasible: False`` with no final fine-tune, no FINN re-check and no winner."""
    space, cost_model = _prepare(entry, board, spec, env)
    fp_state = {k: v.detach().clone() for k, v in fp_model.state_dict().items()}
    shot = _oneshot(entry, board, data, fp_state, spec, env)
    problem = QuantProblem(entry, data, fp_state, board, cost_model, spec.constraints, spec.eval_recipe,
                           spec.val_samples, spec.seed if spec.eval_seed is None else spec.eval_seed,
                           FitnessMemo(spec.fitness_memo) if spec.fitness_memo else None, shot)
    if shot is not None:  # scoring is inference: one process (the supernet is not shipped to workers)
        spec = replace(spec, workers=1, ray_address=None)
    t_start = time.time()
    imp, weights = start_prior(spec.algo, entry, fp_state, space, spec.settings, data)
    start_s = time.time() - t_start
    searcher = make_searcher(spec.algo, space, spec.settings, spec.seed, imp,
                             probe=lambda pos: problem.cost(space.to_bits(pos))[1], weights=weights)
    signature = {"model": entry.name, "board": board.name, "algo": spec.algo, "settings": repr(searcher.s),
                 "cost": spec.cost, "constraints": [c.describe() for c in spec.constraints], "seed": spec.seed,
                 "eval_recipe": spec.eval_recipe.key(), "eval_seed": spec.eval_seed,
                 "candidates": space.describe(), "budget": spec.budget,
                 # what the results depend on, by content: a change refuses the resume (journal.py)
                 "model_digest": entry_digest(entry), "float_model": problem.fp_tag, "val_samples": spec.val_samples,
                 "data": [data.name, data.fingerprint], "board_digest": digest(repr(board))}
    if shot is not None:  # the supernet's weights and calibration set the fitness depends on
        signature["fitness"] = shot.tag
    if spec.target_fps is not None and spec.cost in ("finn", "surrogate"):  # the folding every cost assumed
        signature["target_fps"] = spec.target_fps
    if isinstance(searcher, BitswarmPSO):  # its start changed (session 10): an older journal is not resumed
        signature["start"] = f"ptq-sensitivity/{SENSITIVITY_IMAGES}"
    from bitswarm.search.executor import make_executor

    executor = make_executor(problem.evaluate, spec.workers, spec.ray_address, spec.worker_threads)
    result = run_search(space, searcher, problem.evaluate, run_dir, signature, screening=searcher.s.screening,
                        seed=spec.seed, progress=progress, on_eval=on_eval, budget=spec.budget, executor=executor)
    result["fp_val_acc"] = evaluate(fp_model, data.val.subset(spec.val_samples))
    result["start_s"] = round(start_s, 2)  # the initial swarm's prior (the variant's sensitivity passes)
    if not result["feasible"]:  # nothing to fine-tune or export; journal, history.json and result.json stay
        return result
    return _winner(entry, data, board, fp_model, fp_state, spec, run_dir, env, progress, arch, result, shot)


def _oneshot(entry: ZooEntry, board: Board, data: Dataset, fp_state: dict, spec: SearchSpec, env):
    """The trained supernet that scores candidates (``spec.fitness == "oneshot"``), else None."""
    if spec.fitness not in ("qat", "oneshot"):
        raise ConfigError("--fitness", "fitness", f"unknown fitness {spec.fitness!r}", "qat, oneshot")
    if spec.fitness == "qat":
        return None
    cache = require_cache_dir(env.cache_dir if env else None, "the one-shot fitness")
    shot = open_oneshot(entry, board, data, fp_state, cache)
    if shot is None:
        raise ConfigError("--fitness", "fitness", how_to_train(entry, board), "qat, or oneshot once trained")
    return shot


def _winner(entry: ZooEntry, data: Dataset, board: Board, fp_model, fp_state: dict, spec: SearchSpec,
            run_dir: Path, env, progress: bool, arch: dict | None, result: dict, shot=None) -> dict:
    """The feasible winner: its final fine-tune, FINN re-check and winner dir (each when asked for)."""
    from bitswarm.models import BitConfig
    from bitswarm.models.supernet import recalibrate_bn
    from bitswarm.search.runner import write_json
    from bitswarm.train import load_float_weights, train

    torch.manual_seed(spec.seed)
    best_bits = BitConfig.from_dict({"layers": result["best"]["bits"]})
    if shot is not None:  # the winner starts from its inherited weights and learns from the float model too
        best = recalibrate_bn(shot.net.inherit(best_bits), shot.calib)
        teacher = fp_model
    else:
        best, teacher = entry.build(best_bits), None
        load_float_weights(best, fp_state)
    if spec.final_recipe is not None:
        best = train(best, data, spec.final_recipe, spec.seed, None, progress=progress, desc="final fine-tune",
                     teacher=teacher)
        result["final"] = {"val_acc": evaluate(best, data.val), "test_acc": evaluate(best, data.test),
                           "fp_test_acc": evaluate(fp_model, data.test), "recipe": spec.final_recipe.key()}
    if spec.recheck and spec.cost in ("finn", "surrogate") and board.fpga is not None:
        from bitswarm.data import normalize
        from bitswarm.hw.cost_finn import FinnCost
        from bitswarm.hw.finn_recheck import recheck_with_finn
        from bitswarm.hw.finn_verify import VerifyInputs

        fps = FinnCost(**cost_options(replace(spec, cost="finn"), env)).target_fps
        cache = require_cache_dir(env.cache_dir if env else None, "the FINN re-check")
        val = data.val.subset(RECHECK_VERIFY_SAMPLES)  # FINN's build is verified on validation images
        with torch.no_grad():
            x = normalize(val.x)
            inputs = VerifyInputs(x.numpy(), val.y.numpy(), best.eval()(x).argmax(1).numpy())
        result["recheck"] = recheck_with_finn(best, best_bits, entry, board, spec.constraints, fps, cache, inputs)
    if "final" in result or "recheck" in result:
        write_json(run_dir / "result.json", result)
    if arch is not None:
        from bitswarm.search.compress.artifacts import save_result

        meta = {"method": "search", "algo": spec.algo, "cost": spec.cost, "seed": spec.seed,
                "constraints": [c.describe() for c in spec.constraints], "search_val": result["best"]["fitness"],
                "final": result.get("final"), "start": arch.get("start", arch["model"])}
        save_result(run_dir / "winner", best.eval(), best_bits, {k: v for k, v in arch.items() if k != "start"},
                    meta)
        result["winner_dir"] = str(run_dir / "winner")
    return result


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
