"""`bitswarm supernet` and `bitswarm score` as functions of a typed config.

The supernet flow: model + data -> float checkpoint (shipped or trained) -> the board's space -> sandwich
training (resumable, keyed by content) -> one-shot accuracy of the largest and smallest configurations.
The score flow: each given configuration's one-shot accuracy and its hardware cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bitswarm.boards import Board
from bitswarm.env import Environment
from bitswarm.models.supernet import (
    SupernetRun,
    calibration_images,
    load_trained,
    score,
    train_supernet,
    trained_epochs,
)
from bitswarm.search.oneshot import (
    CALIB_IMAGES,
    CALIB_SEED,
    SupernetSpec,
    sandwich_plan,
    supernet_dir,
    supernet_recipe,
    supernet_space,
)
from bitswarm.workflow import fp_recipe, parse_bits, resolve_model_and_data, scaled, train_float


@dataclass(frozen=True)
class SupernetConfig:
    model: str
    board: Board
    dataset: str | None = None
    data_dir: str | None = None
    weights: str | None = None
    stop_after: int | None = None  # train to this many epochs in total, then stop (resumable)
    k: int = 2
    fp_epochs: int | None = None  # the float model's epochs (default: the dataset's recipe)
    device: torch.device = torch.device("cpu")
    root: Path | None = None  # checkpoint folder's parent (default: shipped folder when it has this run, else cache)
    val_samples: int = 2000
    progress: bool = True


@dataclass(frozen=True)
class SupernetResult:
    ckpt_dir: Path
    epochs_done: int
    epochs: int
    accuracies: dict[str, float]  # "largest"/"smallest" -> one-shot validation accuracy


def _setup(model: str, board: Board, dataset, data_dir, weights, env: Environment, k: int = 2,
           fp_epochs: int | None = None):
    entry, data, _ = resolve_model_and_data(model, dataset, data_dir, env, weights)
    fp = train_float(entry, data, 0, scaled(fp_recipe(entry.dataset, entry.name), fp_epochs), env)
    spec = SupernetSpec(entry, supernet_space(entry, board), supernet_recipe(entry.dataset), k=k)
    return entry, data, fp, spec


def run_supernet(cfg: SupernetConfig, env: Environment) -> SupernetResult:
    entry, data, fp, spec = _setup(cfg.model, cfg.board, cfg.dataset, cfg.data_dir, cfg.weights, env, cfg.k,
                                   cfg.fp_epochs)
    ckpt = supernet_dir(spec, data, fp.model.state_dict(), env.cache_dir, cfg.root)
    net = spec.build()
    net.load_float(fp.model.state_dict())
    plan = sandwich_plan(spec.space, spec.k)
    run = SupernetRun(spec.recipe, spec.seed, ckpt, cfg.device, progress=cfg.progress, stop_after=cfg.stop_after)
    net = train_supernet(net, data, plan, run)
    net = load_trained(spec.build(), ckpt, cfg.device)
    calib = calibration_images(data.train, CALIB_IMAGES, CALIB_SEED)
    val = data.val.subset(cfg.val_samples or None)
    accs = {name: score(net, bits, calib, val) for name, bits in (("largest", plan.largest),
                                                                    ("smallest", plan.smallest))}
    return SupernetResult(ckpt, trained_epochs(ckpt) or 0, spec.recipe.epochs, accs)


@dataclass(frozen=True)
class ScoreConfig:
    model: str
    board: Board
    bits: tuple[str, ...]  # wXaY, default, or YAML/JSON files
    dataset: str | None = None
    data_dir: str | None = None
    weights: str | None = None
    cost: str = "bitops"
    target_fps: int | None = None
    val_samples: int | None = None
    fp_epochs: int | None = None


def open_trained(model: str, board: Board, env: Environment, dataset: str | None = None, data_dir: str | None = None,
                 weights: str | None = None, fp_epochs: int | None = None):
    """``(entry, data, float run, SupernetSpec, OneShot)`` of the trained supernet of ``model`` on ``board``; one
    line saying how to train it where there is none."""
    from bitswarm.errors import BitswarmError
    from bitswarm.search.oneshot import how_to_train, open_oneshot

    entry, data, fp, spec = _setup(model, board, dataset, data_dir, weights, env, fp_epochs=fp_epochs)
    shot = open_oneshot(entry, board, data, fp.model.state_dict(), env.cache_dir)
    if shot is None:
        raise BitswarmError(how_to_train(entry, board))
    return entry, data, fp, spec, shot


def run_score(cfg: ScoreConfig, env: Environment):
    """Yields ``(name, one-shot accuracy, cost values, the OneShot)`` per configuration; refuses without a supernet."""
    from bitswarm.hw.cost import get_cost_model
    from bitswarm.search.api import SearchSpec, cost_options

    entry, data, _, spec, shot = open_trained(cfg.model, cfg.board, env, cfg.dataset, cfg.data_dir, cfg.weights,
                                              cfg.fp_epochs)
    bits = [parse_bits(b, entry, spec.space.candidates) for b in cfg.bits]  # all checked before any scoring
    opts = cost_options(SearchSpec(cost=cfg.cost, target_fps=cfg.target_fps), env)
    cost_model = get_cost_model(cfg.cost, **opts)
    val = data.val.subset(cfg.val_samples)
    for name, b in zip(cfg.bits, bits, strict=True):
        yield name, shot.score(b, val), dict(cost_model(entry, b, cfg.board).values), shot
