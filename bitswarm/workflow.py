"""Shared steps of the commands: load data, train float, fine-tune quantized, cached."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from bitswarm.cachekey import entry_digest
from bitswarm.data import DATASETS, Dataset, load_dataset, resolve_data_dir
from bitswarm.env import Environment
from bitswarm.errors import ConfigError, DataError
from bitswarm.models import BitConfig, ZooEntry
from bitswarm.models.supernet import load_state
from bitswarm.train import QAT_INIT_VERSION, Recipe, evaluate, load_float_weights, run_key, train

DEFAULT_FP = Recipe(epochs=10, lr=2e-3, batch_size=64)
DEFAULT_QAT = Recipe(epochs=5, lr=1e-3, batch_size=64)
FP_RECIPES = {"mnist": Recipe(epochs=10, lr=2e-3, batch_size=128),
              "cifar10": Recipe(epochs=30, lr=2e-3, batch_size=128, weight_decay=5e-4, augment=True)}
# Per-model float recipes that override the dataset's (the shipped CNV checkpoint's recipe).
MODEL_FP_RECIPES = {"cnv": Recipe(epochs=30, lr=0.05, batch_size=128, weight_decay=5e-4, augment=True,
                                  optimizer="sgd")}
# CNV's QAT from the shipped float checkpoint (issue 15; every CNV design, uniform or searched, uses it):
# 2 epochs at CPU scale, no weight decay (on 1-bit weights it flips signs at random, on quantizer
# scales it shrinks them; a short fine-tune does not need it).
MODEL_QAT_RECIPES = {"cnv": Recipe(epochs=2, lr=1e-3, batch_size=128, augment=True)}
QAT_RECIPES = {"mnist": Recipe(epochs=10, lr=1e-3, batch_size=128),
               "cifar10": Recipe(epochs=15, lr=1e-3, batch_size=128, weight_decay=5e-4, augment=True)}


def parse_bits(spec: str, entry: ZooEntry, candidates) -> BitConfig:
    """``default``, ``fp``, ``wXaY`` (uniform everywhere) or a YAML/JSON file."""
    m = re.fullmatch(r"w(\d+)a(\d+)", spec.lower())
    if spec == "default":
        bits = entry.default_bits()
    elif spec == "fp":
        bits = entry.uniform_bits(32, 32)
    elif m:
        bits = entry.uniform_bits(int(m.group(1)), int(m.group(2)))
    elif Path(spec).suffix in (".yaml", ".yml", ".json"):
        return BitConfig.load(spec).validate(entry.specs, candidates, source=spec)
    else:
        raise ConfigError("--bits", "bits", f"cannot read {spec!r}", "default, fp, wXaY, or a .yaml/.json file")
    return bits.validate(entry.specs, candidates, source="--bits")


def _recipe(per_model: dict, per_dataset: dict, default: Recipe, dataset: str, model: str | None) -> Recipe:
    """A zoo model's own recipe (on its CIFAR-10), else the dataset's, else the default."""
    if model in per_model and dataset in (None, "cifar10"):
        return per_model[model]
    return per_dataset.get(dataset, default)


def fp_recipe(dataset: str, model: str | None = None) -> Recipe:
    return _recipe(MODEL_FP_RECIPES, FP_RECIPES, DEFAULT_FP, dataset, model)


def qat_recipe(dataset: str, model: str | None = None) -> Recipe:
    return _recipe(MODEL_QAT_RECIPES, QAT_RECIPES, DEFAULT_QAT, dataset, model)


def resolve_model_and_data(model: str, dataset: str | None, data_dir: str | None, env: Environment,
                           weights: str | None = None, bits_spec: str | None = None,
                           candidates=None) -> tuple[ZooEntry, Dataset, BitConfig | None]:
    """Model (zoo name or user callable), bits (validated BEFORE any data is read) and data.

    The input shape of a user model comes from its dataset (known for mnist/cifar10; read from
    the data for an image folder or .npz).
    """
    from bitswarm.data import DATASETS
    from bitswarm.models import ZOO, get_model

    if model not in ZOO and ":" not in model:
        get_model(model)  # raises the unknown-model error listing the zoo
    _check_zoo_options(model, dataset, weights)
    if model in ZOO and dataset in (None, ZOO[model].dataset):
        entry, data = ZOO[model], None
    elif dataset is None:
        raise ConfigError("--dataset", "dataset", f"a user model ({model}) needs a dataset",
                          "mnist, cifar10, a folder of class subfolders, or an .npz with x/y")
    elif dataset in DATASETS:
        entry, data = get_model(model, weights=weights, dataset=dataset), None
    else:
        data = get_data(dataset, data_dir, env)
        entry = get_model(model, weights=weights, dataset=dataset, input_shape=data.input_shape)
    bits = parse_bits(bits_spec, entry, candidates) if bits_spec else None
    data = data if data is not None else get_data(entry.dataset, data_dir, env)
    if model not in ZOO:
        check_classes(entry, data, dataset or entry.dataset)
    return entry, data, bits


def check_classes(entry: ZooEntry, data: Dataset, source: str) -> None:
    """Every label of ``data`` is one of the model's outputs (else training would fail deep inside, or worse)."""
    with torch.no_grad(), torch.random.fork_rng():
        outputs = int(entry.build(entry.uniform_bits(32, 32)).eval()(torch.zeros(1, *entry.input_shape)).shape[-1])
    if data.num_classes > outputs:
        raise DataError(f"{source}: labels go up to {data.num_classes - 1} but the model {entry.name} has "
                        f"{outputs} outputs; allowed: labels 0..{outputs - 1}, or a model with {data.num_classes} "
                        "outputs")


def _check_zoo_options(model: str, dataset: str | None, weights: str | None) -> None:
    """A zoo model is built for its own dataset and starts from its own float checkpoint: another dataset or a
    weights file would be ignored (or fail deep inside), so both are refused here."""
    from bitswarm.models import ZOO

    if model not in ZOO:
        return
    if weights is not None:
        raise ConfigError("--weights", "weights", f"{model} is a zoo model: it starts from its own float checkpoint "
                          "and would ignore the file", "--weights with a user model (path/to/file.py:build)")
    if dataset not in (None, ZOO[model].dataset):
        raise ConfigError("--dataset", "dataset", f"{model} is a zoo model built for {ZOO[model].dataset}, not "
                          f"{dataset}", f"{ZOO[model].dataset} (or omit --dataset), or a user model for other data")


def get_data(entry_dataset: str, data_dir: str | None, env: Environment) -> Dataset:
    if entry_dataset not in DATASETS:  # a user's folder or .npz: no data directory involved
        return load_dataset(entry_dataset, None)
    d = resolve_data_dir(data_dir, env.data_dir, env.cache_dir, entry_dataset)
    return load_dataset(entry_dataset, d)


@dataclass(frozen=True)
class Trained:
    model: nn.Module
    bits: BitConfig
    val_acc: float
    ckpt_dir: Path


PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "models" / "pretrained"


def _ckpt_name(entry: ZooEntry, kind: str, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", entry.name).strip("_")[-60:]
    return f"{safe}-{kind}-{key}"


def _ckpt_dir(env: Environment, entry: ZooEntry, kind: str, key: str) -> Path:
    """Checkpoint folder: the shipped one (``models/pretrained``) when the run is the shipped run,
    else the cache; user model specs (``/path/file.py:fn``) become a safe file name."""
    shipped = PRETRAINED_DIR / _ckpt_name(entry, kind, key)
    if (shipped / "final.pt").exists():
        return shipped
    return env.cache_dir / "checkpoints" / _ckpt_name(entry, kind, key)


def _float_key(entry: ZooEntry, data: Dataset, seed: int, recipe: Recipe) -> str:
    return run_key(entry_digest(entry), entry.uniform_bits(32, 32).key(), data, seed, recipe, init="scratch")


def float_run_dir(entry: ZooEntry, data: Dataset, seed: int, recipe: Recipe, root: Path) -> Path:
    """Where ``train_float`` of this run keeps its checkpoint under ``root`` (the shipped-run trainer)."""
    return root / _ckpt_name(entry, "fp", _float_key(entry, data, seed, recipe))


def train_float(entry: ZooEntry, data: Dataset, seed: int, recipe: Recipe, env: Environment,
                progress: bool = True) -> Trained:
    bits = entry.uniform_bits(32, 32)
    ckpt = _ckpt_dir(env, entry, "fp", _float_key(entry, data, seed, recipe))
    torch.manual_seed(seed)
    model = train(entry.build(bits), data, recipe, seed, ckpt, progress, desc=f"{entry.name} fp")
    return Trained(model, bits, evaluate(model, data.val), ckpt)


@dataclass(frozen=True)
class Start:
    """Where a QAT run starts when not from the float weights: a model of the same bits (e.g. inherited from a
    supernet) and its tag for the cache key; ``teacher``: ``"float"`` (the float model), ``"none"``, or a tag
    naming ``teacher_model`` (e.g. the supernet's largest configuration), whose outputs the run also matches."""

    model: nn.Module
    tag: str
    teacher: str = "float"
    teacher_model: nn.Module | None = None


def finetune_quantized(entry: ZooEntry, bits: BitConfig, data: Dataset, seed: int, recipe: Recipe,
                       fp: Trained, env: Environment | None, progress: bool = True,
                       start: Start | None = None) -> Trained:
    """QAT from the float weights (or from ``start``); cached on disk when ``env`` is given."""
    torch.manual_seed(seed)
    model = entry.build(bits)
    if start is None:
        load_float_weights(model, fp.model.state_dict())
    else:
        load_state(model, start.model.state_dict())
    ckpt = None
    if env is not None:
        init = f"{fp.ckpt_dir.name}+{QAT_INIT_VERSION}" if start is None else \
            f"{fp.ckpt_dir.name}+{start.tag}+teacher:{start.teacher}"
        key = run_key(entry_digest(entry), bits.key(), data, seed, recipe, init=init)
        ckpt = _ckpt_dir(env, entry, "q", key)
    teacher = None if start is None or start.teacher == "none" else \
        fp.model if start.teacher == "float" else start.teacher_model
    model = train(model, data, recipe, seed, ckpt, progress, desc=f"{entry.name} qat", teacher=teacher)
    return Trained(model, bits, evaluate(model, data.val), ckpt or fp.ckpt_dir)


def scaled(recipe: Recipe, epochs: int | None = None, max_train: int | None = None) -> Recipe:
    changes = {}
    if epochs is not None:
        changes["epochs"] = epochs
    if max_train is not None:
        changes["max_train"] = max_train
    return replace(recipe, **changes)


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


def reference_key(entry: ZooEntry, data: Dataset, recipe: Recipe, fp_recipe: Recipe) -> dict:
    """What the accuracy of a shipped reference design depends on (checked before it is shown): the model's
    content, the data, the QAT recipe and its start (the float run of seed 0 with ``fp_recipe``)."""
    return {"model_digest": entry_digest(entry), "data": data.fingerprint, "recipe": recipe.key(),
            "init": f"{float_run_dir(entry, data, 0, fp_recipe, PRETRAINED_DIR).name}+{QAT_INIT_VERSION}"}


def reference_designs(entry: ZooEntry, data: Dataset, recipe: Recipe, fp_recipe: Recipe) -> dict:
    """The shipped accuracies of FINN's uniform designs of ``entry`` (``models/pretrained/<model>-finn-designs.json``,
    written by ``bench/cnv_uniform.py``) QAT'd with ``recipe`` on ``data``: ``{design: {"test_acc": [per seed],
    ...}}``, or ``{}`` when there is no such file or it was made for another model, data, recipe or init."""
    import json

    path = PRETRAINED_DIR / f"{entry.name}-finn-designs.json"
    if not path.exists():
        return {}
    ref = json.loads(path.read_text())
    want = reference_key(entry, data, recipe, fp_recipe)
    return ref.get("designs", {}) if all(ref.get(k) == v for k, v in want.items()) else {}
