"""FINN surrogate vs FINN estimate: held-out error, learning curve, speed; FINN warm vs cold.

For each model: random configurations over the board's 2..8-bit candidates, split into a
training stream and a held-out stream (independent random streams, no overlap); the real FINN
estimate (target-fps folding, 10,000 FPS, cached on disk) of each; the surrogate fitted on the
first k training configurations for each k of ``--curve`` and on all ``--train``; error on the
``--test`` held-out configurations (MAPE over non-zero truths, max APE, mean/max absolute).
Speed: ``predict_many`` on 10,000 random configurations (best of 5) and one ``Cost`` per call;
FINN: a fresh worker and an empty cache (cold), then new configurations in the warm worker,
then the disk cache. The FINN timing runs first, in its own cache dir, and its worker is closed
before the sample collection so only one FINN process runs at a time.

    BITSWARM_CACHE_DIR=/tmp/surr-cache OMP_NUM_THREADS=1 nice .venv/bin/python bench/bench_surrogate.py \
        --models tfc cnv --train 60 --test 100 --curve 10 20 40 --out bench/results/surrogate.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bitswarm.boards import load_board
from bitswarm.env import read_environment
from bitswarm.hw.calibrate import evaluate, finn_samples, sample_configs, split_configs, surrogate_candidates
from bitswarm.hw.surrogate import encode
from bitswarm.hw.surrogate_fit import fit
from bitswarm.models import get_model

QUANTS = ("lut", "bram18", "dsp", "cycles", "latency_ms")


def finn_speed(entry, board, n_warm: int, seed: int) -> dict:
    from bitswarm.hw.finn_estimate import finn_estimate
    from bitswarm.hw.finn_worker import _WORKERS

    cands = surrogate_candidates(board)
    configs = sample_configs(entry, cands, n_warm + 1, seed, "speed")
    with tempfile.TemporaryDirectory(prefix="bitswarm-bench-finn-") as tmp:
        times = []
        for b in configs:
            t0 = time.perf_counter()
            finn_estimate(entry, b, board, Path(tmp), 10000)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        finn_estimate(entry, configs[0], board, Path(tmp), 10000)
        cached = time.perf_counter() - t0
        for w in list(_WORKERS.values()):
            w.close()
        _WORKERS.clear()
    return {"cold_s": times[0], "warm_s": times[1:], "warm_median_s": float(np.median(times[1:])),
            "disk_cache_s": cached}


def surrogate_speed(sur, entry, board, seed: int) -> dict:
    from bitswarm.hw.cost_surrogate import SurrogateCost

    configs = sample_configs(entry, sur.candidates, 10000, seed, "speed-surrogate")
    t0 = time.perf_counter()
    x = encode(entry, configs)
    encode_s = time.perf_counter() - t0
    best = min(_timed(lambda: sur.predict_many(x)) for _ in range(5))
    cost = SurrogateCost(cache_dir=read_environment().cache_dir)
    cost._loaded[Path("bench")] = sur
    cost.path = Path("bench")
    one = _timed(lambda: [cost(entry, b, board) for b in configs[:500]]) / 500
    return {"batch": len(configs), "predict_many_s": best, "configs_per_s": len(configs) / best,
            "encode_s": encode_s, "one_cost_call_us": one * 1e6}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_model(name: str, board, args, cache: Path) -> dict:
    entry = get_model(name)
    cands = surrogate_candidates(board)
    train, test = split_configs(entry, cands, args.train, args.test, args.seed)
    bar = tqdm(total=len(train) + len(test), desc=f"FINN estimates {name}", unit="config")
    t0 = time.perf_counter()
    costs = finn_samples(entry, board, train + test, cache, 10000, progress=lambda i, n: bar.update(1))
    bar.close()
    tr, te = list(zip(train, costs[: len(train)], strict=True)), list(zip(test, costs[len(train):], strict=True))
    curve = []
    for k in sorted({*(k for k in args.curve if k < len(tr)), len(tr)}):
        t1 = time.perf_counter()
        sur, deps = fit(entry, board, "fps:10000", cands, tr[:k])
        fit_s = time.perf_counter() - t1
        curve.append({"n_train": k, "fit_s": fit_s, "test": evaluate(sur, entry, te)})
    sur = replace(sur, error={"n_train": len(tr), "n_test": len(te), "seed": args.seed,
                              "test": curve[-1]["test"], "train": evaluate(sur, entry, tr), "dependencies": deps})
    out = cache / "surrogate" / f"bench-{name}-{board.name}-fps10000.json"  # MBs of tables: not in the repo
    sur.save(out)
    bits_dependent_cycles = {n: d["cycles"] for n, d in deps.items() if not n.startswith("_") and d["cycles"]}
    return {"model": name, "n_train": len(tr), "n_test": len(te), "samples_s": time.perf_counter() - t0,
            "curve": curve, "dependencies": deps, "cycles_depend_on_bits": bits_dependent_cycles,
            "speed": surrogate_speed(sur, entry, board, args.seed), "surrogate_file": str(out),
            "finn_truth_range": {q: [min(c.values[q] for c in costs), max(c.values[q] for c in costs)]
                                 for q in QUANTS}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["tfc", "cnv"])
    p.add_argument("--board", default="pynq-z2")
    p.add_argument("--train", type=int, default=60)
    p.add_argument("--test", type=int, default=100)
    p.add_argument("--curve", type=int, nargs="*", default=[10, 20, 40])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--finn-speed", type=int, default=3, help="warm FINN estimates to time per model (0: skip)")
    p.add_argument("--out", default="bench/results/surrogate.json")
    args = p.parse_args()
    board = load_board(args.board)
    cache = read_environment().cache_dir
    results = {"board": board.name, "cache_dir": str(cache), "models": {}}
    if not args.finn_speed and Path(args.out).exists():  # keep the FINN timings of an earlier run
        results["finn_speed"] = json.loads(Path(args.out).read_text()).get("finn_speed", {})
    for name in args.models:
        if args.finn_speed:
            results.setdefault("finn_speed", {})[name] = finn_speed(get_model(name), board, args.finn_speed, args.seed)
        results["models"][name] = r = bench_model(name, board, args, cache)
        for row in r["curve"]:
            print(name, f"n_train={row['n_train']:3d}", "  ".join(
                f"{q} MAPE {row['test'][q]['mape_pct']:.3f}% max {row['test'][q]['max_ape_pct']:.2f}%" for q in QUANTS))
        print(name, f"{r['speed']['configs_per_s']:.0f} configs/s; FINN", results.get("finn_speed", {}).get(name))
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
