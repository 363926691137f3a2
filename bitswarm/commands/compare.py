"""`bitswarm compare`: K seeds per searcher at equal budget; mean/std, Mann-Whitney U, Friedman."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from bitswarm.commands.core import add_common, count_or_all, epochs_or_skip, positive_int
from bitswarm.commands.search import (
    add_constraint_args,
    add_executor_args,
    add_fitness_arg,
    add_target_fps_arg,
    check_finn_cost,
    parse_constraints,
    resolve_cost,
)


def finished_run(run_dir: Path, spec) -> dict | None:
    """The result of a run this comparison already finished (same searcher, seed, budget, constraints,
    evaluation and final recipes), so an interrupted or extended comparison does not redo it."""
    path = run_dir / "result.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    sig = r.get("signature", {})
    same = (sig.get("algo") == spec.algo and sig.get("seed") == spec.seed and sig.get("budget") == spec.budget
            and sig.get("eval_recipe") == spec.eval_recipe.key() and sig.get("eval_seed") == spec.eval_seed
            and sig.get("constraints") == [c.describe() for c in spec.constraints]
            and sig.get("target_fps") == spec.target_fps and sig.get("val_samples") == spec.val_samples
            and str(sig.get("fitness", "qat")).startswith("oneshot") == (spec.fitness == "oneshot"))
    final_ok = (spec.final_recipe is None or r.get("feasible") is False  # an infeasible run has no final fine-tune
                or r.get("final", {}).get("recipe") == spec.final_recipe.key())
    return r if same and final_ok else None


def cmd_compare(args) -> int:
    import sys

    args.command_line = " ".join(["bitswarm", *sys.argv[1:]])
    if args.eval_seed is not None and args.eval_seed < 0:
        args.eval_seed = None
    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.errors import ConfigError
    from bitswarm.search.api import SEARCHERS, SearchSpec, check_constraints, check_feasible, search
    from bitswarm.search.bbpso import BBPSOSettings
    from bitswarm.search.journal import check_journal_file
    from bitswarm.search.oneshot import resolve_fitness
    from bitswarm.search.problem import EVAL_RECIPE
    from bitswarm.search.stats import markdown, summarize
    from bitswarm.workflow import fp_recipe, qat_recipe, resolve_model_and_data, scaled, set_threads, train_float

    set_threads(args.threads)
    algos = [a.strip() for a in args.algos.split(",")]
    unknown = [a for a in algos if a not in SEARCHERS]
    if unknown or len(set(algos)) != len(algos):  # before any work, so no run is half done
        raise ConfigError("--algos", "algos", f"unknown or repeated searcher(s) {', '.join(unknown) or args.algos}",
                          ", ".join(SEARCHERS))
    constraints = parse_constraints(args)
    board, env = load_board(args.board), read_environment()
    args.cost = resolve_cost(args, constraints, board)
    check_constraints(args.cost, constraints)
    entry, data, _ = resolve_model_and_data(args.model, args.dataset, args.data_dir, env, args.weights)
    probe = SearchSpec(cost=args.cost, constraints=constraints, target_fps=args.target_fps)
    board = check_finn_cost(entry, board, env, probe)
    check_feasible(entry, board, probe, env=env)  # before any training
    for algo in algos:  # a corrupt journal of an earlier comparison is found before any training
        for seed in range(args.seeds):
            check_journal_file(Path(args.out) / f"{algo}-s{seed}" / "journal.sqlite")
    fp = train_float(entry, data, 0, scaled(fp_recipe(entry.dataset, entry.name), args.fp_epochs), env)
    fitness, line = resolve_fitness(args.fitness, entry, board, data, fp.model.state_dict(), env.cache_dir)
    if args.fitness == "auto":
        print(line)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[float]] = {a: [] for a in algos}
    tests: dict[str, list[float]] = {a: [] for a in algos}
    final = scaled(qat_recipe(entry.dataset, entry.name), args.final_epochs) if args.final_epochs else None
    memo = None if args.eval_seed is None else str(out / "fitness.sqlite")
    for seed in range(args.seeds):  # seed-major: an interrupted comparison has every searcher at equal seeds
        for algo in algos:
            base = BBPSOSettings(particles=args.particles, iterations=10_000 if args.budget else args.iters,
                                 gamma=args.gamma)
            spec = SearchSpec(algo=algo, settings=base, cost=args.cost, constraints=constraints,
                              eval_recipe=replace(EVAL_RECIPE, epochs=args.eval_epochs,
                                                  max_train=args.eval_train_samples or None),
                              val_samples=args.val_samples or None, seed=seed, budget=args.budget,
                              workers=args.workers, ray_address=args.ray_address, final_recipe=final,
                              eval_seed=args.eval_seed, fitness_memo=memo, target_fps=args.target_fps,
                              fitness=fitness)
            r = finished_run(out / f"{algo}-s{seed}", spec) or search(entry, data, board, fp.model, spec,
                                                                       out / f"{algo}-s{seed}", env, progress=False)
            best = r["best"]
            results[algo].append(best["fitness"] if best["violation"] == 0 else 0.0)
            test = r.get("final", {}).get("test_acc")
            if final is not None:  # an infeasible run has no final fine-tune: it scores 0, as on validation
                tests[algo].append(test if test is not None and best["violation"] == 0 else 0.0)
            print(_run_line(algo, seed, r, test), flush=True)
    rows = summarize(results, algos[0])
    report = {"results": results, "table": rows, "command": args.command_line}
    text = "Best feasible validation accuracy (search fitness):\n\n" + markdown(rows)
    if final is not None:
        report["test_after_final"] = tests
        report["test_table"] = summarize(tests, algos[0])
        text += "\nHeld-out test accuracy of each run's winner after the final fine-tune:\n\n"
        text += markdown(report["test_table"])
    (out / "compare.json").write_text(json.dumps(report, indent=2))
    (out / "compare.md").write_text(text)
    print(text)
    return 0


def _run_line(algo: str, seed: int, r: dict, test: float | None) -> str:
    best = r["best"]
    val = f"val {best['fitness']:.4f}" if best["violation"] == 0 else "no feasible configuration"
    return (f"{algo} seed {seed}: {val} violation {best['violation']:.3g} ({r['evaluations']} trained + "
            f"{r.get('evaluations_cost_only', 0)} cost-only evaluations, {r['wall_s']:.0f} s)"
            + (f"; after final fine-tune: test {test:.4f}" if test is not None else ""))


def register(sub) -> None:
    sp = sub.add_parser("compare", help="compare searchers over K seeds (Table-10 statistics)",
                        description="Runs each searcher with seeds 0..K-1 at the same budget and reports "
                                    "mean/std of the best feasible validation accuracy, Mann-Whitney U p-values "
                                    "against the first algorithm and Friedman mean ranks. Ablations: "
                                    "bbpso-q-IN, bbpso-q-SCP, bbpso-q-LSP.")
    add_common(sp)
    sp.add_argument("--algos", default="bbpso-q,bbpso,random", help="comma-separated searchers")
    sp.add_argument("--seeds", type=positive_int, default=10, help="seeds per searcher (default 10)")
    add_constraint_args(sp)
    sp.add_argument("--particles", type=positive_int, default=6)
    sp.add_argument("--iters", type=positive_int, default=5)
    sp.add_argument("--gamma", type=positive_int, default=2, help="local search every GAMMA iterations")
    sp.add_argument("--budget", type=positive_int, default=None,
                    help="equal budget of trained evaluations per run (overrides --iters); candidates whose "
                         "cost already violates a constraint are not trained and cost no budget")
    add_fitness_arg(sp)
    sp.add_argument("--eval-epochs", type=int, default=1)
    sp.add_argument("--eval-train-samples", type=count_or_all, default=2000,
                    help="training images per evaluation (0: every training image, as in `search`)")
    sp.add_argument("--val-samples", type=count_or_all, default=1000,
                    help="validation images per evaluation (0: the whole validation split)")
    sp.add_argument("--eval-seed", type=int, default=0,
                    help="one fine-tune seed for every evaluation of every run (common random numbers; runs "
                         "share evaluations through OUT/fitness.sqlite); -1: each run uses its own seed")
    sp.add_argument("--fp-epochs", type=positive_int, default=None,
                    help="float training epochs (default: the dataset's recipe)")
    sp.add_argument("--final-epochs", type=epochs_or_skip, default=0,
                    help="QAT epochs of each run's winner, then its held-out test accuracy (0: skip)")
    add_target_fps_arg(sp)
    add_executor_args(sp)
    sp.add_argument("--out", default="runs/compare", help="output directory (journals, compare.json/.md)")
    sp.set_defaults(fn=cmd_compare)
