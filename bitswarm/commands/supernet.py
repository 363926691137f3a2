"""`bitswarm supernet` (train the mixed-precision supernet) and `bitswarm score` (one-shot what-ifs)."""

from __future__ import annotations

from pathlib import Path

from bitswarm.commands.core import add_common, count_or_all, positive_int


def cmd_supernet(args) -> int:
    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.flows.supernet import SupernetConfig, run_supernet
    from bitswarm.train import resolve_device
    from bitswarm.workflow import set_threads

    device = resolve_device(args.device)
    set_threads(args.threads)
    cfg = SupernetConfig(args.model, load_board(args.board), args.dataset, args.data_dir, args.weights,
                         stop_after=args.stop_after, k=args.k, fp_epochs=args.fp_epochs, device=device,
                         root=Path(args.root) if args.root else None, val_samples=args.val_samples)
    r = run_supernet(cfg, read_environment())
    state = "trained" if r.epochs_done >= r.epochs else f"trained {r.epochs_done} of {r.epochs} epochs (resumable)"
    print(f"supernet {state} on {device}: {r.ckpt_dir}")
    print(f"one-shot validation accuracy: largest {r.accuracies['largest']:.2%}, "
          f"smallest {r.accuracies['smallest']:.2%}")
    return 0


def cmd_score(args) -> int:
    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.flows.supernet import ScoreConfig, run_score
    from bitswarm.workflow import set_threads

    set_threads(args.threads)
    cfg = ScoreConfig(args.model, load_board(args.board), tuple(args.bits), args.dataset, args.data_dir,
                      args.weights, cost=args.cost, target_fps=args.target_fps, val_samples=args.val_samples or None,
                      fp_epochs=args.fp_epochs)
    first = True
    for name, acc, cost, shot in run_score(cfg, read_environment()):
        if first:
            print(f"supernet: {shot.ckpt_dir.name} ({shot.epochs} epochs), BatchNorm re-estimated on "
                  f"{len(shot.calib)} training images")
            first = False
        values = ", ".join(f"{k}={v:.4g}" for k, v in cost.items())
        print(f"{name}: one-shot val {acc:.2%}; {cfg.cost}: {values}")
    return 0


def _fp_epochs(sp) -> None:
    sp.add_argument("--fp-epochs", type=positive_int, default=None,
                    help="epochs of the float model the supernet starts from (default: the dataset's recipe; "
                         "the shipped checkpoint where there is one)")


def register(sub) -> None:
    sp = sub.add_parser("supernet", help="train the mixed-precision supernet of a model on a board's space",
                        description="One set of weights for every bit configuration of the board's search space "
                                    "(FINN-aware 1..8 bits on FPGA boards): each step trains the largest, the "
                                    "smallest and K random configurations (sandwich rule), the others distilled "
                                    "from the largest. Starts from the float checkpoint, resumes where it "
                                    "stopped (even mid-epoch), keyed by content. Afterwards `search --fitness "
                                    "oneshot` and `score` rank configurations without training.")
    add_common(sp)
    sp.add_argument("--stop-after", type=positive_int, default=None,
                    help="stop after this many epochs in total, of the recipe's 10 (MNIST) or 15 (CIFAR-10); the "
                         "same command resumes it, and search/score use it as far as it trained")
    sp.add_argument("--k", type=positive_int, default=2, help="random configurations per step (default 2)")
    sp.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="auto (CUDA when present), cpu or cuda")
    sp.add_argument("--root", default=None, help="parent folder of the checkpoint (default: the shipped "
                    "models/pretrained folder when it holds this run, else the cache)")
    sp.add_argument("--val-samples", type=count_or_all, default=2000,
                    help="validation images for the closing one-shot accuracies (0: all)")
    _fp_epochs(sp)
    sp.set_defaults(fn=cmd_supernet)

    sc = sub.add_parser("score", help="one-shot accuracy and hardware cost of given configurations",
                        description="Each configuration inherits the trained supernet's weights, BatchNorm is "
                                    "re-estimated, and its validation accuracy and cost are printed, one line "
                                    "each (no training, no search).")
    add_common(sc)
    sc.add_argument("--bits", nargs="+", required=True, metavar="FILE",
                    help="bit configurations: YAML/JSON files, wXaY or default")
    sc.add_argument("--cost", default="bitops", help="cost model: bitops, qonnx, finn, surrogate, tvm")
    sc.add_argument("--target-fps", type=positive_int, default=None, help="--cost finn/surrogate: folding target")
    sc.add_argument("--val-samples", type=count_or_all, default=0, help="validation images (default 0: all)")
    _fp_epochs(sc)
    sc.set_defaults(fn=cmd_score)
