"""`bitswarm cluster`: magnitude pruning + PSO-initialised k-means + fixed-point weights."""

from __future__ import annotations

import time

from bitswarm.commands.core import add_common, add_start_options, number_in


def cmd_cluster(args) -> int:
    from bitswarm.env import read_environment
    from bitswarm.search.compress import stages
    from bitswarm.train import evaluate

    start = stages.start_from_args(args, read_environment())
    model, data = start.model, start.data
    val0 = evaluate(model, data.val)
    print(f"start: {start.description}: val {val0:.2%}")
    t0 = time.time()
    res, _ = stages.cluster_stage(model, {k: getattr(args, k) for k in stages.CLUSTER_DEFAULTS}, args.seed)
    for name, r in res.items():
        print(f"  {name:<10} k={r.centroids.size:<3} delta={r.delta:.4g}  zeros {r.sparsity:.1%}  "
              f"k-means MSE {r.inertia:.3g}")
    val1, test1 = evaluate(model, data.val), evaluate(model, data.test)
    print(f"{args.init}-k-means ({time.time() - t0:.1f} s): val {val0:.2%} -> {val1:.2%}  test {test1:.2%}")
    meta = {"method": f"cluster-{args.init}", "start": start.description, "seed": args.seed,
            "sparsity": args.sparsity, "step": args.step, "val_before": val0, "val_after": val1, "test_after": test1,
            "layers": {n: {"k": int(r.centroids.size), "delta": r.delta, "inertia": r.inertia,
                           "zeros": r.sparsity} for n, r in res.items()}}
    stages.write_output(args, model, start.bits, start.arch, meta)
    return 0


def register(sub) -> None:
    from bitswarm.search.compress.stages import CLUSTER_DEFAULTS as D

    sp = sub.add_parser("cluster", help="pruning + PSO-initialised k-means + fixed-point weights",
                        description="Per layer: prune the smallest weights, cluster the rest into 2^b centroids "
                                    "(k-means started from PSO, random or k-means++ centroids), convert to b-bit "
                                    "fixed point. Writes model.pt, bits.yaml, arch.json, meta.json to --out.")
    add_common(sp)
    sp.add_argument("--bits", default="w4a8", help="bit config for --from ptq/qat (default w4a8)")
    sp.add_argument("--from", dest="source", default="ptq",
                    help="start: ptq (default: float weights, calibrated activations), qat, or an output dir")
    sp.add_argument("--out", required=True, help="output directory")
    add_start_options(sp)
    sp.add_argument("--sparsity", type=number_in(0.0, 0.99), default=D["sparsity"],
                    help=f"share of weights pruned per layer, in [0, 0.99] (default {D['sparsity']:g})")
    sp.add_argument("--init", choices=("pso", "random", "kmeans++"), default=D["init"],
                    help=f"initial centroids (default {D['init']})")
    sp.add_argument("--clusters", type=int, default=D["clusters"], help="clusters per layer (default 2^bits)")
    sp.add_argument("--step", choices=("max", "mse"), default=D["step"],
                    help="fixed-point step: max|c|/qmax (default) or least-squared-error")
    sp.add_argument("--export", action="store_true", help="also write a verified QONNX export (model.onnx)")
    sp.set_defaults(fn=cmd_cluster)
