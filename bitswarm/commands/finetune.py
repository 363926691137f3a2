"""`bitswarm finetune --method evo|eda-cc`: gradient-free search of a quantized model's weight codes."""

from __future__ import annotations

import time

from bitswarm.commands.core import add_common, add_start_options, number_in, positive_int


def cmd_finetune(args) -> int:
    from bitswarm.env import read_environment
    from bitswarm.search.compress import stages
    from bitswarm.train import evaluate

    start = stages.start_from_args(args, read_environment())
    data, model = start.data, start.model
    split = getattr(data, args.fitness_split)
    test0, val0 = evaluate(model, data.test), evaluate(model, data.val)
    print(f"start: {start.description}: val {val0:.2%}  test {test0:.2%}")
    t0 = time.time()
    opts = {k: getattr(args, k) for k in stages.FINETUNE_DEFAULTS}  # the stage's options, as the flow passes them
    res, params = stages.finetune_codes(model, split, args.method, args.fitness_samples, args.seed, opts, progress=True)
    val1, test1 = evaluate(model, data.val), evaluate(model, data.test)
    print(f"{args.method}: fitness ({args.fitness_split}[:{args.fitness_samples}]) "
          f"{res.start_fitness:.4f} -> {res.best_fitness:.4f} in {res.evaluations} evaluations, "
          f"{time.time() - t0:.0f} s")
    print(f"result: val {val0:.2%} -> {val1:.2%}  test {test0:.2%} -> {test1:.2%}")
    meta = {"method": f"finetune-{args.method}", "start": start.description, "seed": args.seed,
            "fitness_split": args.fitness_split, "fitness_samples": args.fitness_samples,
            "val_before": val0, "val_after": val1, "test_before": test0, "test_after": test1,
            "evaluations": res.evaluations, "params": params}
    stages.write_output(args, model, start.bits, start.arch, meta)
    return 0


def register(sub) -> None:
    from bitswarm.search.compress.stages import FINETUNE_DEFAULTS as D

    sp = sub.add_parser("finetune", help="gradient-free fine-tuning of quantized weights (evo, EDA+CC)",
                        description="Search the integer weight codes of a quantized model without gradients: "
                                    "'evo' = evolution strategy moving a small share of weights to neighbouring "
                                    "levels (starts at nearest rounding); 'eda-cc' = EDA with cooperative "
                                    "coevolution over {nearest, second-nearest} level per weight. Writes model.pt, "
                                    "bits.yaml, arch.json, meta.json to --out.")
    add_common(sp)
    sp.add_argument("--method", choices=("evo", "eda-cc"), default="evo")
    sp.add_argument("--bits", default="w3a8", help="bit config for --from ptq/qat (default w3a8)")
    sp.add_argument("--from", dest="source", default="ptq",
                    help="start: ptq (float -> nearest rounding; default), qat, or an output dir of "
                         "prune/cluster/finetune")
    sp.add_argument("--out", required=True, help="output directory")
    add_start_options(sp)
    sp.add_argument("--fitness-split", choices=("val", "train"), default=D["fitness_split"],
                    help=f"split the fitness is measured on (never test); default {D['fitness_split']}")
    sp.add_argument("--fitness-samples", type=int, default=D["fitness_samples"],
                    help=f"fitness subset size (default {D['fitness_samples']})")
    sp.add_argument("--generations", type=int, default=D["generations"],
                    help=f"evo: generations; eda-cc: generations between regroupings (default {D['generations']})")
    sp.add_argument("--pop", type=int, default=D["pop"],
                    help=f"evo: children per generation; eda-cc: population S (default {D['pop']})")
    sp.add_argument("--mu", type=int, default=D["mu"], help=f"evo: parents kept (default {D['mu']})")
    sp.add_argument("--rate", type=number_in(0.0, 1.0, lo_open=True), default=D["rate"],
                    help=f"evo: share of weights moved per child, in (0, 1] (default {D['rate']:g})")
    sp.add_argument("--radius", type=int, default=D["radius"],
                    help=f"evo: max levels from nearest rounding (default {D['radius']})")
    sp.add_argument("--budget", type=positive_int, default=D["budget"],
                    help=f"eda-cc: fitness evaluations (default {D['budget']})")
    sp.add_argument("--export", action="store_true", help="also write a verified QONNX export (model.onnx)")
    sp.set_defaults(fn=cmd_finetune)
