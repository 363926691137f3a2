"""`bitswarm search`: BBPSO-Quantizer (or a baseline) under hardware constraints."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from bitswarm.commands.core import (
    add_common,
    count_or_all,
    epochs_or_skip,
    limit_type,
    number_in,
    positive_int,
)
from bitswarm.errors import BitswarmError, ConfigError
from bitswarm.hw.cost import SHORTCUTS

#: Training images of each candidate's fine-tune: the paper's 2 epochs on 8,000 images rank configurations
#: as its all-image recipe does (bench/bench_fitness.py: Spearman 0.905 on TFC, 0.90 on cifar-smallcnn, at
#: the full recipe's own noise ceiling) for a fraction of the time (5.5x, 4.2x cheaper)
EVAL_TRAIN_SAMPLES = 8000


def resolve_cost(args, constraints, board) -> str:
    """``--cost`` when given; else bitops, unless a constraint needs a hardware quantity."""
    if args.cost:
        return args.cost
    from bitswarm.hw.cost_bitops import BitOpsCost

    if all(c.quantity in BitOpsCost.provides for c in constraints):
        return "bitops"
    cost = "finn" if board.fpga is not None else "tvm"
    print(f"--cost {cost} (the constraints {', '.join(c.quantity for c in constraints)} need a hardware cost model "
          f"for board {board.name})")
    return cost


def parse_constraints(args):
    from bitswarm.hw.cost import Constraint

    out = []
    for text in args.constraint or []:
        m = re.fullmatch(r"\s*([a-z0-9_]+)\s*<=\s*([0-9.eE+-]+)\s*", text)
        if not m:
            raise ConfigError("--constraint", "constraint", f"cannot read {text!r}", "QUANTITY<=LIMIT, e.g. lut<=30000")
        out.append(Constraint(m.group(1), float(m.group(2))))
    out += [Constraint(q, float(getattr(args, k))) for k, q in SHORTCUTS.items() if getattr(args, k) is not None]
    return tuple(out)


def add_constraint_args(sp, default_cost: str | None = None) -> None:
    sp.add_argument("--cost", default=default_cost,
                    help="cost model: bitops, qonnx, finn, surrogate (after `bitswarm calibrate`), tvm; default: "
                         "bitops, or what the constraints need (latency/LUT/BRAM/DSP: finn on an FPGA board, "
                         "tvm on a CPU board)")
    sp.add_argument("--constraint", action="append", help="QUANTITY<=LIMIT (repeatable), e.g. lut<=30000")
    for k, q in SHORTCUTS.items():
        sp.add_argument("--" + k.replace("_", "-"), type=limit_type, default=None,
                        help=f"shortcut for {q}<=LIMIT (a number > 0)")


def add_target_fps_arg(sp) -> None:
    sp.add_argument("--target-fps", type=positive_int, default=None,
                    help="--cost finn/surrogate: the throughput FINN folds every candidate for (default 10000, or "
                         "what --max-latency-ms needs); e.g. 3000 as FINN's cnv-w1a1 on the PYNQ-Z2")


def add_fitness_arg(sp) -> None:
    sp.add_argument("--fitness", default="auto", choices=("auto", "oneshot", "qat"),
                    help="how a candidate is scored: oneshot (inherited from the trained supernet, BatchNorm "
                         "re-estimated, no training: `bitswarm supernet`), qat (a short fine-tune each, as the "
                         "paper), auto (default: oneshot where a supernet for the model and board exists)")


def add_executor_args(sp) -> None:
    sp.add_argument("--workers", type=int, default=None,
                    help="evaluate a round's configurations in N local processes (1 torch thread each); "
                         "default: one per CPU core (in this process when the cost model cannot be shipped, "
                         "e.g. tvm); 1: serial")
    sp.add_argument("--ray-address", default=None,
                    help="run evaluations as Ray tasks on this cluster (e.g. ray://head:10001, auto; "
                         "'local' starts a local Ray instance with --workers CPUs)")


def cmd_search(args) -> int:
    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.search.api import check_constraints, check_feasible, search
    from bitswarm.search.journal import check_journal_file
    from bitswarm.search.oneshot import resolve_fitness
    from bitswarm.workflow import fp_recipe, set_threads, train_float

    set_threads(args.threads)
    constraints = parse_constraints(args)
    board = load_board(args.board)
    args.cost = resolve_cost(args, constraints, board)
    check_constraints(args.cost, constraints)  # before any long work
    env = read_environment()
    entry, data, fp_model, arch = _model_to_search(args, env)
    spec = _spec(args, entry, constraints)
    board = check_finn_cost(entry, board, env, spec)
    check_feasible(entry, board, spec, env=env)  # a constraint no configuration meets is refused before any training
    run_dir = Path(args.run_dir or f"runs/{Path(entry.name.split(':')[0]).stem}-{board.name}-{args.algo}-s{args.seed}")
    check_journal_file(run_dir / "journal.sqlite")  # a corrupt journal is found before any training
    if fp_model is None:
        fp_model = train_float(entry, data, args.seed, fp_recipe(entry.dataset, entry.name), env).model
    fitness, line = resolve_fitness(args.fitness, entry, board, data, fp_model.state_dict(), env.cache_dir)
    if args.fitness == "auto":
        print(line)
    spec = replace(spec, fitness=fitness)
    r = search(entry, data, board, fp_model, spec, run_dir, env, arch=arch)
    if not r["feasible"]:
        raise BitswarmError(infeasible_line(r, constraints, run_dir))
    _print_result(r, constraints, run_dir)
    return 0


def _spec(args, entry, constraints):
    from bitswarm.search.api import SearchSpec
    from bitswarm.search.bbpso import BBPSOSettings
    from bitswarm.search.problem import EVAL_RECIPE
    from bitswarm.workflow import qat_recipe, scaled

    settings = BBPSOSettings(particles=args.particles, iterations=args.iters, importance_init=not args.no_init,
                             screening=not args.no_screening, local_search=not args.no_local_search,
                             gamma=args.gamma, r_changes=args.r, alpha=args.alpha, beta=args.beta)
    final = scaled(qat_recipe(entry.dataset, entry.name), args.final_epochs) if args.final_epochs != 0 else None
    return SearchSpec(algo=args.algo, settings=settings, cost=args.cost, constraints=constraints,
                      eval_recipe=replace(EVAL_RECIPE, epochs=args.eval_epochs,
                                          max_train=args.eval_train_samples or None),
                      val_samples=args.val_samples or None, final_recipe=final, seed=args.seed, budget=args.budget,
                      workers=args.workers, ray_address=args.ray_address, target_fps=args.target_fps)


def check_finn_cost(entry, board, env, spec):
    """Before any long work, for a FINN cost: what FINN cannot map is refused; a surrogate's board keeps
    only the bit-widths it was calibrated over (the board returned)."""
    if spec.cost in ("finn", "surrogate"):
        from bitswarm.models.finn_support import check_finn_support

        check_finn_support(entry.build(entry.default_bits()))
    return _calibrated_board(entry, board, env, spec) if spec.cost == "surrogate" else board


def _calibrated_board(entry, board, env, spec):
    """A missing or mismatched calibration is found before any long work; the board keeps only the
    bit-widths the surrogate was calibrated over."""
    from bitswarm.hw.cost import get_cost_model
    from bitswarm.search.api import cost_options

    calibrated = get_cost_model("surrogate", **cost_options(spec, env)).surrogate_for(entry, board).candidates
    kept = tuple(b for b in board.bit_candidates if b in calibrated)
    if kept != board.bit_candidates:
        print(f"--cost surrogate: searching the calibrated bit-widths {', '.join(map(str, kept))} "
              f"(board candidates {', '.join(map(str, board.bit_candidates))})")
        board = replace(board, bit_candidates=kept)
    return board


def infeasible_line(r: dict, constraints, run_dir) -> str:
    """One line: no feasible configuration, by how much the best one violates, what was kept."""
    cost = r["best"]["cost"]
    over = ", ".join(f"{c.quantity}={cost[c.quantity]:.4g} (limit {c.limit:g})" for c in constraints
                     if cost.get(c.quantity, c.limit) > c.limit)
    return (f"no feasible configuration in {r['evaluations_trained']} trained + {r['evaluations_cost_only']} "
            f"cost-only evaluations: the best violates the constraints by {r['best']['violation']:.3g} (relative "
            f"excess; {over}); no winner exported; journal, history.json and result.json kept in {run_dir}")


def _print_result(r: dict, constraints, run_dir) -> None:
    best = r["best"]
    print(f"best ({r['evaluations_trained']} trained + {r['evaluations_cost_only']} cost-only evaluations, "
          f"{r['wall_s']:.0f} s): val {best['fitness']:.2%}, violation {best['violation']:.3g}, "
          + ", ".join(f"{c.quantity}={best['cost'][c.quantity]:.4g}" for c in constraints))
    if "final" in r:
        f = r["final"]
        print(f"after final fine-tune: val {f['val_acc']:.2%}, test {f['test_acc']:.2%} "
              f"(float test {f['fp_test_acc']:.2%}; ΔAccuracy {f['test_acc'] - f['fp_test_acc']:+.2%})")
    if "recheck" in r:
        rc = r["recheck"]
        verdict = "meets the constraints" if rc["violation"] == 0 else f"VIOLATES them by {rc['violation']:.3g}"
        print(f"re-checked with FINN on the exported winner ({rc['target_fps']} FPS folding): "
              + ", ".join(f"{c.quantity}={rc['values'][c.quantity]:.4g}" for c in constraints) + f": {verdict}")
    if "winner_dir" in r:
        print(f"winner: {r['winner_dir']} (continue with `bitswarm finetune|cluster --from` it, or --export)")
    print(f"run dir: {run_dir}")


def _model_to_search(args, env):
    """(entry, data, starting weights or None to train float ones, arch.json for the winner dir or None).

    ``--from DIR`` (a prune/cluster/finetune output) searches that model: its architecture (pruned
    filters kept) and its weights as the starting point of every candidate's fine-tune."""
    from bitswarm.models import ZOO
    from bitswarm.workflow import get_data, resolve_model_and_data

    if args.source:
        from bitswarm.search.compress import artifacts, nets

        loaded = artifacts.load_result(args.source)
        entry = nets.arch_entry(loaded.arch)
        data = get_data(entry.dataset, args.data_dir, env)
        return entry, data, loaded.model, {**loaded.arch, "start": f"{args.source} ({loaded.meta.get('method', '?')})"}
    entry, data, _ = resolve_model_and_data(args.model, args.dataset, args.data_dir, env, args.weights)
    return entry, data, None, ({"model": entry.name} if entry.name in ZOO and args.dataset in (None, entry.dataset)
                               else None)


def register(sub) -> None:
    sp = sub.add_parser("search", help="search per-layer bit-widths under hardware constraints",
                        description="BBPSO-Quantizer (bbpso-q) or a baseline (bbpso, random) maximising "
                                    "validation accuracy subject to cost constraints; every evaluation is "
                                    "journalled in RUN_DIR/journal.sqlite and a re-run of the same command resumes.")
    add_common(sp)
    sp.add_argument("--algo", default="bbpso-q",
                    help="bbpso-q (default; the paper's BBPSO-Quantizer); bitswarm (our variant, docs/SEARCH.md); "
                         "baselines bbpso, ga (pymoo), random; ablations bbpso-q-IN, bbpso-q-SCP, bbpso-q-LSP")
    add_constraint_args(sp)
    sp.add_argument("--particles", type=positive_int, default=15, help="swarm size N (Table 4: 15)")
    sp.add_argument("--iters", type=positive_int, default=20, help="iterations T (Table 4: 20)")
    sp.add_argument("--budget", type=positive_int, default=None,
                    help="stop after this many trained evaluations (between rounds); a candidate whose cost "
                         "already violates a constraint is not trained and costs no budget")
    sp.add_argument("--gamma", type=positive_int, default=5, help="local search every GAMMA iterations")
    sp.add_argument("--r", type=positive_int, default=2, help="positions changed by the local search")
    sp.add_argument("--alpha", type=number_in(0.0, lo_open=True), default=4.0, help="Eq. 5 normalisation range (> 0)")
    sp.add_argument("--beta", type=number_in(0.5, 1.0), default=1.0, help="Eq. 5 scale, in [0.5, 1]")
    sp.add_argument("--no-init", action="store_true", help="ablation -IN: random initialisation")
    sp.add_argument("--no-screening", action="store_true", help="ablation -SCP: re-evaluate duplicates")
    sp.add_argument("--no-local-search", action="store_true", help="ablation -LSP")
    add_fitness_arg(sp)
    sp.add_argument("--eval-epochs", type=int, default=2, help="QAT epochs per evaluation (paper: 2)")
    sp.add_argument("--eval-train-samples", type=count_or_all, default=EVAL_TRAIN_SAMPLES,
                    help=f"training images per evaluation (default {EVAL_TRAIN_SAMPLES}: ranks configurations as the "
                         "paper's all-image recipe does, Spearman 0.90 on TFC and cifar-smallcnn, 4-5x cheaper; "
                         "BENCHMARKS.md issue 16); 0: every training image, as the paper")
    sp.add_argument("--val-samples", type=count_or_all, default=0,
                    help="validation images per evaluation (default 0: the whole validation split)")
    sp.add_argument("--final-epochs", type=epochs_or_skip, default=None,
                    help="final fine-tune epochs of the winner (default: the model's QAT recipe; 0: skip)")
    add_target_fps_arg(sp)
    add_executor_args(sp)
    sp.add_argument("--from", dest="source", default=None, metavar="DIR",
                    help="search a prune/cluster/finetune output directory (its pruned architecture and weights) "
                         "instead of --model")
    sp.add_argument("--run-dir", default=None, help="journal + results (default runs/<model>-<board>-<algo>-s<seed>)")
    sp.set_defaults(fn=cmd_search)
