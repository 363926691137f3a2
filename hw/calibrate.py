"""Calibrate the FINN surrogate: random configurations -> FINN estimates (cached) -> fit -> held-out error.

Training and held-out configurations come from two independent random streams of the same seed,
so the held-out set does not move when the training-set size changes (and no held-out
configuration is also a training one). Bits are drawn per variable from the candidates a FINN-costed
search has (:func:`bitswarm.models.finn_support.finn_narrow` of the board's candidates: 1..8 bits, no
1-bit activation where FINN cannot map one, e.g. in front of a zero-padded conv), so no sample is a
combination FINN refuses and the surrogate covers exactly the search space.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from bitswarm.boards import Board
from bitswarm.errors import ConfigError
from bitswarm.models import BitConfig, ZooEntry
from bitswarm.models.bitconfig import LayerBits

Choices = tuple[tuple[int, ...], ...]  # per variable (hw.surrogate.variables order): its bit-widths


def surrogate_candidates(board: Board) -> tuple[int, ...]:
    """The board's candidates FINN maps (1..8 bits)."""
    from bitswarm.models.finn_support import FINN_BITS

    cands = tuple(sorted(b for b in board.bit_candidates if b in FINN_BITS))
    if not cands:
        raise ConfigError(board.source, "search.bit_candidates", "no candidate of 1..8 bits for FINN",
                          "integers 1..8")
    return cands


def surrogate_choices(entry: ZooEntry, candidates) -> Choices:
    """Per variable, the FINN-aware candidates (``finn_narrow``) of ``candidates``; per-variable
    ``candidates`` (a tuple of tuples) are taken as they are."""
    from bitswarm.hw.surrogate import variables
    from bitswarm.models.finn_support import finn_narrow

    if candidates and isinstance(candidates[0], tuple | list):
        return tuple(tuple(c) for c in candidates)
    narrow = finn_narrow(entry)
    out = []
    for name, kind in variables(entry):
        kept = tuple(sorted(set(narrow(name, kind, tuple(candidates)))))
        if not kept:
            raise ConfigError(f"surrogate of {entry.name}", f"{name}.{kind}",
                              f"no FINN bit-width among the candidates {list(candidates)}", "integers 1..8")
        out.append(kept)
    return tuple(out)


def random_config(entry: ZooEntry, choices: Choices, rng: random.Random) -> BitConfig:
    """One configuration, each variable drawn from its own candidates."""
    it = iter(choices)
    return BitConfig(tuple((s.name, LayerBits(rng.choice(next(it)) if s.has_weight else None,
                                              rng.choice(next(it)) if s.has_act else None)) for s in entry.specs))


def sample_configs(entry: ZooEntry, candidates, n: int, seed: int, stream: str,
                   exclude: frozenset[BitConfig] = frozenset()) -> list[BitConfig]:
    """``n`` distinct random configurations of stream ``train`` or ``test`` (never one of ``exclude``);
    ``candidates``: per-variable choices, or one set narrowed per variable by :func:`surrogate_choices`."""
    choices = surrogate_choices(entry, candidates)
    rng = random.Random(f"bitswarm-surrogate:{entry.name}:{seed}:{stream}")
    out: list[BitConfig] = []
    seen = set(exclude)
    for _ in range(100 * n + 100):
        if len(out) == n:
            break
        b = random_config(entry, choices, rng)
        if b not in seen:
            seen.add(b)
            out.append(b)
    return out


#: one configuration in LOW_SHARE (train and test) comes from the low-bit stratum (:func:`split_configs`)
LOW_SHARE = 4


def low_test_count(n_test: int) -> int:
    """How many of the ``n_test`` held-out configurations are low-bit ones (the last ones)."""
    return n_test // LOW_SHARE


def split_configs(entry: ZooEntry, candidates, n_train: int, n_test: int, seed: int):
    """Held-out and training configurations: random ones, and one in :data:`LOW_SHARE` from the low-bit
    stratum (every variable at one of its two lowest candidates; the training set's first one is every
    variable's lowest). Uniform draws rarely put two neighbouring variables at 1 bit, yet that is where FINN's
    budgets bind and where it changes path: a 1-bit weight after a 1-bit activation takes the XNOR datapath,
    with another folding and half the weight memory (a 1-bit weight after a wider input is stored as 2 bits)."""
    choices = surrogate_choices(entry, candidates)
    low, corner = tuple(c[:2] for c in choices), tuple(c[:1] for c in choices)
    n_low_test, n_low_train = low_test_count(n_test), max(1, n_train // LOW_SHARE)
    test = sample_configs(entry, choices, n_test - n_low_test, seed, "test")
    test += sample_configs(entry, low, n_low_test, seed, "test-low", exclude=frozenset(test))
    train = sample_configs(entry, corner, 1, seed, "train-low", exclude=frozenset(test))
    train += sample_configs(entry, low, n_low_train - len(train), seed, "train-low",
                            exclude=frozenset(test) | frozenset(train))
    train += sample_configs(entry, choices, n_train - len(train), seed, "train", exclude=frozenset(test + train))
    return train, test


def finn_samples(entry: ZooEntry, board: Board, configs: list[BitConfig], cache_dir: Path, target_fps: int,
                 progress=None) -> list:
    """FINN estimates (``Cost``) of ``configs``, from the disk cache where present."""
    from bitswarm.hw.finn_estimate import finn_estimate

    out = []
    for b in configs:
        out.append(finn_estimate(entry, b, board, cache_dir, target_fps))
        if progress:
            progress(len(out), len(configs))
    return out


QUANTITIES = ("lut", "bram18", "dsp", "uram", "cycles", "latency_ms", "throughput_fps")


def error_stats(pred, true) -> dict[str, float]:
    """MAPE and max APE (%) over samples with a non-zero truth, plus absolute errors over all."""
    import numpy as np

    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    err = np.abs(pred - true)
    nz = true != 0
    ape = err[nz] / np.abs(true[nz]) * 100
    return {"mape_pct": float(ape.mean()) if nz.any() else 0.0, "max_ape_pct": float(ape.max()) if nz.any() else 0.0,
            "mae": float(err.mean()), "max_abs": float(err.max()), "n": int(len(true)), "n_nonzero": int(nz.sum())}


def evaluate(sur, entry: ZooEntry, samples: list) -> dict[str, dict[str, float]]:
    from bitswarm.hw.surrogate import encode

    pred = sur.predict_many(encode(entry, [b for b, _ in samples]))
    return {q: error_stats(pred[q], [c.values.get(q, 0.0) for _, c in samples]) for q in QUANTITIES}


def calibrate(entry: ZooEntry, board: Board, cache_dir: Path, n_train: int = 60, n_test: int = 30, seed: int = 0,
              target_fps: int = 10000, progress=None):
    """FINN-estimate random configurations, fit on ``n_train``, measure the error on ``n_test`` held-out ones."""
    from bitswarm.hw.cost_surrogate import policy_name
    from bitswarm.hw.surrogate_fit import fit

    if n_train < 2 or n_test < 1:
        raise ConfigError("--train/--test", "train/test", f"{n_train}/{n_test} configurations",
                          "at least 2 to fit and 1 held out")
    choices = surrogate_choices(entry, surrogate_candidates(board))
    train, test = split_configs(entry, choices, n_train, n_test, seed)
    costs = finn_samples(entry, board, train + test, cache_dir, target_fps, progress)
    tr, te = list(zip(train, costs[:n_train], strict=True)), list(zip(test, costs[n_train:], strict=True))
    sur, deps = fit(entry, board, policy_name(target_fps), choices, tr)
    n_low = low_test_count(n_test)
    error = {"n_train": n_train, "n_test": n_test, "seed": seed, "test": evaluate(sur, entry, te),
             "train": evaluate(sur, entry, tr), "dependencies": deps, "n_test_low": n_low}
    if n_low:
        error["test_low"] = evaluate(sur, entry, te[-n_low:])
    return replace(sur, error=error), te
