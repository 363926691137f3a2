"""`bitswarm prune --method ocnna`: OCNNA filter pruning, then a short fine-tune."""

from __future__ import annotations

import time

from bitswarm.commands.core import add_common, add_start_options


def cmd_prune(args) -> int:
    from bitswarm.env import read_environment
    from bitswarm.errors import ConfigError
    from bitswarm.search.compress import stages
    from bitswarm.train import evaluate

    opts = {k: getattr(args, k) for k in stages.PRUNE_DEFAULTS}
    stages.check_prune_options(opts)
    start = stages.start_from_args(args, read_environment())
    if start.arch.get("keep"):
        raise ConfigError(args.source, "arch.json", "this model is already pruned", "an unpruned model")
    model, data = start.model, start.data
    val0 = evaluate(model, data.val)
    t0 = time.time()
    pruned = stages.prune_stage(model, start.arch["model"], data, opts, args.seed, progress=True)
    res, val_pruned = pruned.result, pruned.val_pruned
    for c, idx in res.keep.items():
        print(f"  {c:<8} keeps {len(idx):>4} / {len(res.importance[c])} filters")
    print(f"OCNNA k={args.k:g} on {args.dvar} D_var images, then fine-tune ({time.time() - t0:.1f} s): "
          f"RPR (Eq. 7) {res.rpr:.2%} ({res.params_after:,} / {res.params_before:,} params); "
          f"val {val0:.2%} -> {val_pruned:.2%} pruned")
    val1, test1 = evaluate(model, data.val), evaluate(model, data.test)
    print(f"after fine-tune ({args.ft_epochs} epochs): val {val1:.2%}  test {test1:.2%}")
    arch = {**start.arch, "keep": res.keep}
    meta = {"method": "prune-ocnna", "start": start.description, "seed": args.seed, "k": args.k,
            "dvar": args.dvar, "rpr": res.rpr, "params_before": res.params_before,
            "params_after": res.params_after, "val_before": val0, "val_pruned": val_pruned, "val_after": val1,
            "test_after": test1, "ft_epochs": args.ft_epochs, "importance": res.importance}
    stages.write_output(args, model, start.bits, arch, meta)
    return 0


def register(sub) -> None:
    from bitswarm.search.compress.stages import PRUNE_DEFAULTS as D

    sp = sub.add_parser("prune", help="OCNNA filter pruning (cnv, smallcnn, cifar-smallcnn, resnet*) with fine-tuning",
                        description="Rank each conv layer's filters by OCNNA importance (PCA 95%% -> Frobenius "
                                    "norm -> coefficient of variation over D_var images), keep those at or above "
                                    "the k-th percentile, rebuild the smaller Brevitas model and fine-tune it. "
                                    "Writes model.pt, bits.yaml, arch.json (kept filters), meta.json to --out.")
    add_common(sp)
    sp.set_defaults(model="smallcnn")
    sp.add_argument("--method", choices=("ocnna",), default="ocnna")
    sp.add_argument("--k", type=float, default=D["k"], help=f"percentile of significance (default {D['k']:g})")
    sp.add_argument("--bits", default="default", help="bit config for --from ptq/qat (default 'default')")
    sp.add_argument("--from", dest="source", default="qat",
                    help="start: float, ptq, qat (default), or an output dir of cluster/finetune")
    sp.add_argument("--out", required=True, help="output directory")
    add_start_options(sp)
    sp.add_argument("--dvar", type=int, default=D["dvar"],
                    help=f"D_var: number of training images scored (default {D['dvar']})")
    sp.add_argument("--workers", type=int, default=D["workers"],
                    help=f"threads scoring filters in parallel (default {D['workers']})")
    sp.add_argument("--ft-epochs", type=int, default=D["ft_epochs"],
                    help=f"fine-tune epochs after pruning (default {D['ft_epochs']})")
    sp.add_argument("--ft-lr", type=float, default=D["ft_lr"], help=f"fine-tune learning rate (default {D['ft_lr']:g})")
    sp.add_argument("--ft-max-train", type=int, default=D["ft_max_train"],
                    help=f"fine-tune on the first N training images (default {D['ft_max_train']})")
    sp.add_argument("--export", action="store_true", help="also write a verified QONNX export (model.onnx)")
    sp.set_defaults(fn=cmd_prune)
