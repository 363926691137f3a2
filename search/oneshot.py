"""The one-shot fitness: a configuration scored by the supernet (inherit, re-estimate BatchNorm, validate).

This module says which supernet serves a model on a board (its space, recipe and content key), where its
checkpoint lives (``models/pretrained`` when shipped, else the cache), and scores configurations with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from bitswarm.boards import Board
from bitswarm.cachekey import entry_digest, state_digest
from bitswarm.data import Dataset
from bitswarm.models import BitConfig, ZooEntry
from bitswarm.models.supernet import (
    SUPERNET_VERSION,
    SandwichPlan,
    Supernet,
    calibration_images,
    load_trained,
    score,
    trained_epochs,
)
from bitswarm.search.space import Space, build_space
from bitswarm.train import Recipe, run_key
from bitswarm.workflow import PRETRAINED_DIR, _ckpt_name

#: the supernet recipes: Adam from the float checkpoint, cosine, no weight decay (1-bit latent weights)
SUPERNET_RECIPES = {"mnist": Recipe(epochs=10, lr=1e-3, batch_size=128),
                    "cifar10": Recipe(epochs=15, lr=1e-3, batch_size=128, augment=True)}
DEFAULT_SUPERNET_RECIPE = Recipe(epochs=10, lr=1e-3, batch_size=128)
#: random configurations per sandwich step, besides the largest and the smallest
K_RANDOM = 2
#: training images BatchNorm is re-estimated on before a configuration is scored (BENCHMARKS.md, issue 28)
CALIB_IMAGES = 2000
CALIB_SEED = 0


def supernet_recipe(dataset: str) -> Recipe:
    return SUPERNET_RECIPES.get(dataset, DEFAULT_SUPERNET_RECIPE)


def supernet_space(entry: ZooEntry, board: Board) -> Space:
    """The board's search space: FINN-aware 1..8 bits on an FPGA board, the board's candidates elsewhere."""
    return build_space(entry, board, "finn" if board.fpga is not None else "bitops")


def basis(space: Space) -> list[BitConfig]:
    """Configurations that together hold every (variable, candidate): the i-th choice everywhere."""
    return [space.to_bits(tuple(min(i, h) for h in space.highs)) for i in range(max(space.highs) + 1)]


def sandwich_plan(space: Space, k: int = K_RANDOM) -> SandwichPlan:
    def sample(g: torch.Generator) -> BitConfig:
        pos = tuple(int(torch.randint(0, h + 1, (1,), generator=g)) for h in space.highs)
        return space.to_bits(space.repair(pos))

    largest = space.to_bits(space.repair(space.highs))
    smallest = space.to_bits(space.repair(tuple(0 for _ in space.highs)))
    return SandwichPlan(largest, smallest, sample, k)


@dataclass(frozen=True)
class SupernetSpec:
    """What a supernet is (its content key): model, space, data, seed, recipe, start, sandwich size."""

    entry: ZooEntry
    space: Space
    recipe: Recipe
    seed: int = 0
    k: int = K_RANDOM

    def key(self, data: Dataset, fp_state: dict) -> str:
        init = f"{state_digest(fp_state)[:16]}+{SUPERNET_VERSION}+k{self.k}"
        return run_key(entry_digest(self.entry), json.dumps(self.space.describe(), sort_keys=True), data,
                       self.seed, self.recipe, init=init)

    def build(self) -> Supernet:
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            return Supernet(self.entry.build_fn, basis(self.space))


def supernet_dir(spec: SupernetSpec, data: Dataset, fp_state: dict, cache_dir: Path,
                 root: Path | None = None) -> Path:
    """``root``/<name> when given; else the shipped folder when it holds this supernet, else the cache's."""
    name = _ckpt_name(spec.entry, "super", spec.key(data, fp_state))
    if root is not None:
        return Path(root) / name
    shipped = PRETRAINED_DIR / name
    if trained_epochs(shipped) is not None:
        return shipped
    return cache_dir / "checkpoints" / name


@dataclass
class OneShot:
    """Scores configurations with a trained supernet (BatchNorm re-estimated on ``calib`` each time)."""

    net: Supernet
    calib: torch.Tensor
    ckpt_dir: Path
    epochs: int
    tag: str = ""  # what a memoised one-shot fitness depends on: the supernet's weights and the calibration set

    def __post_init__(self):
        if not self.tag:
            self.tag = f"oneshot:{state_digest(self.net.state_dict())[:16]}:{state_digest({'x': self.calib})[:8]}"

    def score(self, bits: BitConfig, split) -> float:
        return score(self.net, bits, self.calib, split)


def open_oneshot(entry: ZooEntry, board: Board, data: Dataset, fp_state: dict, cache_dir: Path,
                 calib_images: int = CALIB_IMAGES) -> OneShot | None:
    """The trained supernet of ``entry`` on ``board``'s space, or None where none was trained."""
    spec = SupernetSpec(entry, supernet_space(entry, board), supernet_recipe(entry.dataset))
    ckpt = supernet_dir(spec, data, fp_state, cache_dir)
    epochs = trained_epochs(ckpt)
    if not epochs:
        return None
    weights = ckpt / ("final.pt" if (ckpt / "final.pt").exists() else "state.pt")
    key = (str(ckpt), weights.stat().st_mtime_ns, data.fingerprint, calib_images)
    if key not in _OPENED:  # a run asks several times (fitness choice, search, final QAT): loaded and hashed once
        net = load_trained(spec.build(), ckpt)
        _OPENED.clear()  # one supernet (tens of MB) kept at a time
        _OPENED[key] = OneShot(net, calibration_images(data.train, calib_images, CALIB_SEED), ckpt, epochs)
    return _OPENED[key]


#: the supernet last opened in this process, by checkpoint file (and its modification time), data and calibration
_OPENED: dict[tuple, OneShot] = {}


def how_to_train(entry: ZooEntry, board: Board) -> str:
    return (f"no trained supernet for {entry.name} on {board.name}: the fitness is a short QAT per candidate; "
            f"`bitswarm supernet --model {entry.name} --board {board.name}` trains one (then --fitness oneshot)")


def resolve_fitness(fitness: str, entry: ZooEntry, board: Board, data: Dataset, fp_state: dict,
                    cache_dir: Path) -> tuple[str, str]:
    """``auto``: ``oneshot`` where a trained supernet serves the model on this board, else ``qat``; with the one
    line that says which and why."""
    if fitness != "auto":
        return fitness, f"--fitness {fitness}"
    if open_oneshot(entry, board, data, fp_state, cache_dir) is not None:
        return "oneshot", (f"--fitness oneshot (the trained supernet of {entry.name} on {board.name} scores "
                           "each candidate)")
    return "qat", how_to_train(entry, board)
