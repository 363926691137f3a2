"""Where a compression command starts: a float-trained, PTQ'd, QAT'd or earlier-stage model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from bitswarm.data import Dataset
from bitswarm.errors import ConfigError
from bitswarm.models import BitConfig
from bitswarm.search.compress import artifacts, nets, qgrid

SOURCES = ("float", "ptq", "qat")


@dataclass(frozen=True)
class Start:
    model: nn.Module
    bits: BitConfig
    arch: dict
    data: Dataset
    description: str


def starting_point(model_name: str, bits_spec: str, source: str, data_dir: str | None, seed: int,
                   candidates, env, fp_epochs: int | None = None, qat_epochs: int | None = None,
                   progress: bool = True) -> Start:
    """``source``: ``float`` (train float, bits ignored), ``ptq`` (float -> nearest rounding,
    calibrated activations), ``qat`` (quantization-aware fine-tune) or a directory written by
    another compression command (its model, bits and architecture are reused)."""
    from bitswarm.workflow import QAT_RECIPES, finetune_quantized, fp_recipe, get_data, parse_bits, scaled, train_float

    if source not in SOURCES:
        if not Path(source).is_dir():
            raise ConfigError("--from", "from", f"{source!r} is neither a source nor a directory",
                              ", ".join(SOURCES) + ", or an output directory of prune/cluster/finetune")
        loaded = artifacts.load_result(source)
        ent = nets.entry(loaded.arch["model"])
        data = get_data(ent.dataset, data_dir, env)
        return Start(loaded.model, loaded.bits, loaded.arch, data, f"{source} ({loaded.meta.get('method', '?')})")
    ent = nets.entry(model_name)
    data = get_data(ent.dataset, data_dir, env)
    fp = train_float(ent, data, seed, scaled(fp_recipe(ent.dataset, ent.name), fp_epochs), env, progress)
    arch = {"model": ent.name}
    if source == "float":
        return Start(fp.model, fp.bits, arch, data, "float")
    bits = parse_bits(bits_spec, ent, candidates)
    if source == "ptq":
        return Start(qgrid.ptq(ent.build(bits), fp.model.state_dict(), data.train), bits, arch, data,
                     f"PTQ [{bits.short()}]")
    q = finetune_quantized(ent, bits, data, seed, scaled(QAT_RECIPES[ent.dataset], qat_epochs), fp, env, progress)
    return Start(q.model, bits, arch, data, f"QAT [{bits.short()}]")


def start_from_args(args, env) -> Start:
    """The starting point a compression command's parsed arguments ask for (torch threads set too);
    ``env`` is the CLI's :class:`~bitswarm.env.Environment`."""
    from bitswarm.atomic import check_writable_dir
    from bitswarm.boards import load_board
    from bitswarm.workflow import set_threads

    check_writable_dir(args.out, "--out", "out")  # before minutes of work, not after
    set_threads(args.threads)
    board = load_board(args.board)
    return starting_point(args.model, args.bits, args.source, args.data_dir, args.seed, board.bit_candidates + (32,),
                          env, fp_epochs=args.fp_epochs, qat_epochs=args.qat_epochs)


def write_output(args, model: nn.Module, bits: BitConfig, arch: dict, meta: dict) -> Path:
    """A compression command's output directory (``--out``), with a verified QONNX file if ``--export``."""
    shape = nets.entry(arch["model"]).input_shape if args.export else None
    out = artifacts.save_result(args.out, model, bits, arch, meta, shape)
    print(f"written: {out}")
    return out


# One set of defaults per stage, read by its command's flags and by the compression flow's step
PRUNE_DEFAULTS = {"k": 40.0, "dvar": 500, "workers": 2, "ft_epochs": 1, "ft_lr": 5e-4, "ft_max_train": 20000}
CLUSTER_DEFAULTS = {"sparsity": 0.3, "init": "pso", "clusters": None, "step": "max"}
FINETUNE_DEFAULTS = {"generations": 40, "pop": 8, "mu": 4, "rate": 0.002, "radius": 1, "budget": 1000,
                     "fitness_split": "val", "fitness_samples": 2000}


@dataclass(frozen=True)
class Pruned:
    result: object  # ocnna.OcnnaResult
    val_pruned: float  # validation accuracy right after pruning, before the fine-tune
    options: dict


def check_prune_options(opts: dict) -> None:
    """Refuse a bad pruning percentile before any work (the command calls it before loading anything)."""
    k = opts.get("k", PRUNE_DEFAULTS["k"])
    if not 0 <= k < 100:
        raise ConfigError("--k", "k", f"{k} is not a percentile", "0 <= k < 100")


def prune_stage(model: nn.Module, model_name: str, data: Dataset, opts: dict | None, seed: int,
                progress: bool = False) -> Pruned:
    """OCNNA filter pruning of ``model`` in place, then its short fine-tune (:data:`PRUNE_DEFAULTS`)."""
    from bitswarm.search.compress import ocnna
    from bitswarm.train import Recipe, evaluate, train

    o = {**PRUNE_DEFAULTS, **(opts or {})}
    check_prune_options(o)
    res = ocnna.ocnna(model, model_name, data.train.subset(o["dvar"]), o["k"], o["workers"])
    val_pruned = evaluate(model, data.val)
    if o["ft_epochs"] > 0:
        recipe = Recipe(epochs=o["ft_epochs"], lr=o["ft_lr"], batch_size=128, max_train=o["ft_max_train"])
        train(model, data, recipe, seed, None, progress=progress, desc="fine-tune")
    return Pruned(res, val_pruned, o)


def cluster_stage(model: nn.Module, opts: dict | None, seed: int) -> tuple[dict, dict]:
    """Magnitude pruning + PSO-initialised k-means + fixed point, per layer, in place
    (:data:`CLUSTER_DEFAULTS`); returns (per-layer results, the options used)."""
    from bitswarm.search.compress import pso_kmeans

    o = {**CLUSTER_DEFAULTS, **(opts or {})}
    res = pso_kmeans.cluster_model(model, o["sparsity"], o["init"], seed, o["clusters"], step=o["step"])
    if not res:
        raise ConfigError("--bits", "bits", "no integer-quantized weight layer to cluster", "weights of 2..16 bits")
    return res, o


def finetune_codes(model: nn.Module, split, method: str, n_fit: int | None, seed: int, opts: dict | None = None,
                   progress: bool = False):
    """Gradient-free fine-tune of ``model``'s weight codes in place: ``evo`` (evolution strategy from
    nearest rounding) or ``eda-cc`` (EDA+CC over {nearest, second-nearest} level per weight).
    Returns (the search result, the parameters used)."""
    import numpy as np

    from bitswarm.search.compress import eda_cc, evo_finetune

    o = {**FINETUNE_DEFAULTS, **(opts or {})}
    grids = qgrid.extract_grids(model)
    if not grids:
        raise ConfigError("--bits", "bits", "no integer-quantized weight layer to fine-tune", "weights of 2..16 bits")
    if method == "evo":
        p = evo_finetune.EvoParams(mu=o["mu"], lam=o["pop"], rate=o["rate"], radius=o["radius"])
        return evo_finetune.evo_finetune(model, split, n_fit, p, o["generations"], seed, progress), p.__dict__
    if method != "eda-cc":
        raise ConfigError("--method", "method", f"unknown fine-tune method {method!r}", "evo, eda-cc")
    codes = qgrid.flatten([g.codes for g in grids])
    ratio = np.concatenate([g.ratio.reshape(-1).numpy() for g in grids])
    cand = eda_cc.binary_space(codes, *qgrid.bounds(grids), ratio=ratio)
    fit = qgrid.Fitness(model, grids, split, n_fit)
    p = eda_cc.EDAParams(pop=o["pop"], n_best=max(1, o["pop"] // 4), gens=o["generations"])
    res = eda_cc.run_eda_cc(lambda x: fit(eda_cc.decode(cand, x)), np.zeros(codes.size, np.int64), 2, p,
                            o["budget"], seed, progress=progress)
    qgrid.write_codes(model, grids, qgrid.unflatten(eda_cc.decode(cand, res.best), grids))
    return res, {**p.__dict__, "budget": o["budget"]}
