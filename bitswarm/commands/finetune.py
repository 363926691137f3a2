"""`bitswarm finetune --method evo|eda-cc`: gradient-free search of a quantized model's weight codes."""

from __future__ import annotations

import time

from bitswarm.commands.core import add_common, add_start_options, positive_int


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
    opts = {k: getattr(args, k) for k in stages.FINETUNE_DEFAULTS}
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
    sp.add_argument("--fitness-split", choices=("val", "train"), default="val",
                    help="split the fitness is measured on (never test); default val")
    sp.add_argument("--fitness-samples", type=int, default=2000, help="fitness subset size (default 2000)")
    sp.add_argument("--generations", type=int, default=40,
                    help="evo: generations; eda-cc: generations between regroupings (default 40)")
    sp.add_argument("--pop", type=int, default=8, help="evo: children per generation; eda-cc: population S")
    sp.add_argument("--mu", type=int, default=4, help="evo: parents kept (default 4)")
    sp.add_argument("--rate", type=float, default=0.002, help="evo: share of weights moved per child")
    sp.add_argument("--radius", type=int, default=1, help="evo: max levels from nearest rounding")
    sp.add_argument("--budget", type=positive_int, default=1000, help="eda-cc: fitness evaluations (default 1000)")
    sp.add_argument("--export", action="store_true", help="also write a verified QONNX export (model.onnx)")
    sp.set_defaults(fn=cmd_finetune)
