"""Where the evaluations of one round run: in this process, a local process pool, or a Ray cluster.

An executor takes the problem's ``evaluate(bits) -> (fitness, violation, cost)`` once and then
runs batches: ``run(batch)`` yields ``(index, result, seconds)`` as each evaluation completes,
so the runner journals every result the moment it exists. The search itself never depends on
completion order (the runner puts results back in ask order).

* ``serial``: one after another here (the default for one worker).
* ``process``: a local pool of spawned processes (``--workers N``), each with ``threads`` torch
  threads; the problem is pickled (cloudpickle) once per worker, not per evaluation.
* ``ray``: Ray tasks on the cluster at ``address`` (``--ray-address``; ``local`` starts a local
  Ray instance); the problem goes to Ray's object store once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import cloudpickle

from bitswarm.errors import ConfigError

_WORKER_EVAL: Callable | None = None


def _timed(evaluate, bits):
    t0 = time.time()
    res = evaluate(bits)
    return res, time.time() - t0


def _pickled(evaluate) -> bytes:
    try:
        return cloudpickle.dumps(evaluate)
    except Exception as e:  # e.g. a cost model holding a live RPC server
        raise ConfigError("--workers", "executor", f"the evaluation cannot be sent to worker processes ({e})",
                          "--workers 1 (serial) with this cost model") from e


class SerialExecutor:
    name = "serial"

    def __init__(self, evaluate: Callable):
        self.evaluate = evaluate

    def run(self, batch: Sequence) -> Iterator[tuple[int, tuple, float]]:
        for i, bits in enumerate(batch):
            res, secs = _timed(self.evaluate, bits)
            yield i, res, secs

    def close(self) -> None:
        pass


def _init_worker(blob: bytes, threads: int) -> None:
    global _WORKER_EVAL
    import torch

    torch.set_num_threads(threads)
    _WORKER_EVAL = cloudpickle.loads(blob)


def _worker_call(bits):
    return _timed(_WORKER_EVAL, bits)


class ProcessExecutor:
    name = "process"

    def __init__(self, evaluate: Callable, workers: int, threads: int = 1, blob: bytes | None = None):
        import multiprocessing as mp

        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                        initializer=_init_worker, initargs=(blob or _pickled(evaluate), threads))

    def run(self, batch: Sequence) -> Iterator[tuple[int, tuple, float]]:
        futures = {self.pool.submit(_worker_call, bits): i for i, bits in enumerate(batch)}
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for f in done:
                res, secs = f.result()
                yield futures.pop(f), res, secs

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class _RayEvaluator:
    """A Ray actor holding the unpickled problem, so each task ships only a bit configuration."""

    def __init__(self, blob: bytes, threads: int):
        _init_worker(blob, threads)

    def call(self, index: int, bits):
        return index, *_worker_call(bits)


class RayExecutor:
    name = "ray"

    def __init__(self, evaluate: Callable, address: str = "local", threads: int = 1, workers: int | None = None):
        import ray
        from ray.util import ActorPool

        blob = _pickled(evaluate)  # fail here, not in a task, if it cannot be shipped
        if not ray.is_initialized():
            opts = {"num_cpus": workers} if address == "local" and workers else {}
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False, **opts)
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(_RayEvaluator)
        ref = ray.put(blob)
        self.actors = [actor.remote(ref, threads) for _ in range(n)]
        self.pool = ActorPool(self.actors)
        self.ray = ray

    def run(self, batch: Sequence) -> Iterator[tuple[int, tuple, float]]:
        for i, bits in enumerate(batch):
            self.pool.submit(lambda a, v: a.call.remote(*v), (i, bits))
        while self.pool.has_next():
            yield self.pool.get_next_unordered()

    def close(self) -> None:
        for a in self.actors:  # the Ray instance itself belongs to the user's session
            self.ray.kill(a)


def auto_workers(evaluate: Callable) -> int:
    """The default: one process per CPU core when the evaluation can be shipped to processes."""
    return _auto(evaluate)[0]


def _auto(evaluate: Callable) -> tuple[int, bytes | None]:
    import os

    try:
        blob = _pickled(evaluate)  # kept: the pool reuses it rather than pickling the data again
    except ConfigError:
        return 1, None  # e.g. a TVM cost holding its RPC server: evaluations stay in this process
    return max(1, os.cpu_count() or 1), blob


def make_executor(evaluate: Callable, workers: int | None = 1, ray_address: str | None = None, threads: int = 1):
    """``ray_address`` set: Ray; ``workers`` > 1: local process pool; None: one process per core
    (serial when the evaluation cannot be pickled); else serial."""
    blob = None
    if workers is None:
        workers, blob = _auto(evaluate)
    if workers < 1:
        raise ConfigError("--workers", "workers", f"{workers} is not a number of processes", "an integer >= 1")
    if ray_address:
        return RayExecutor(evaluate, ray_address, threads, workers if workers > 1 else None)
    if workers > 1:
        return ProcessExecutor(evaluate, workers, threads, blob)
    return SerialExecutor(evaluate)
