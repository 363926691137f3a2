"""MetaSchedule tuning for host builds (``--tune``), with the tuning database kept in the cache.

Relax's tuning pipeline with builder/runner timeouts that fit 2 loaded cores (MetaSchedule's 30 s default
failed every build here, so nothing was tuned and the unscheduled loop nests were compiled: 0.047 ms for
TFC instead of 0.005). On a trial budget that fits (16-64 trials over all of a model's tasks) MetaSchedule
may still lose to bitswarm's default CPU schedule (:mod:`bitswarm.hw.tvm_schedule`; TFC int, 16 trials:
0.0054 ms tuned vs 0.0045 ms), so a tuned build is timed against the default one and the faster library is
kept (:func:`keep_faster`); the build info says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bitswarm.errors import BitswarmError

TUNING_RECORDS = "database_tuning_record.json"  # MetaSchedule's JSON database in a work dir


class TvmTuneUnavailableError(BitswarmError):
    """MetaSchedule tuning was asked for but is not available."""


@dataclass(frozen=True)
class TuneChoice:
    kept: str  # "tuned" or "default": the faster of the two libraries
    tuned_ms: float
    default_schedule_ms: float


def tuning_dir(cache_dir: Path, mod, target, trials: int) -> Path:
    """Where the tuning database of ``mod`` for ``target`` and ``trials`` is kept: keyed by the module's
    content (its TVMScript), the target and the trial budget, so a second build of the same model reuses it."""
    from bitswarm.cachekey import digest

    return Path(cache_dir) / "tvm-tuning" / digest(mod.script(), str(target), trials)


def tune_module(mod, target_dict: dict[str, Any], cores: int, work_dir: Path | None, trials: int,
                cache_dir: Path | None = None):
    """MetaSchedule-tune ``mod`` on this CPU and apply the tuned schedules (the module to compile, target,
    whether a kept database was reused instead of tuning).

    Runs :func:`_tuning_pipeline` (Relax's tuning pipeline: tune, then ``MetaScheduleApplyDatabase`` on
    the fused TIR); MetaSchedule needs ``num-cores`` in the target (``cores`` unless the target says), and
    ``mcpu`` defaults to this CPU's. With ``cache_dir`` the database lives there (:func:`tuning_dir`);
    one that holds records is applied as it is (0 trials), not re-tuned.
    """
    import tvm
    from tvm.target.codegen import llvm_get_system_cpu

    spec = {"mcpu": llvm_get_system_cpu(), **target_dict, "num-cores": int(target_dict.get("num-cores", cores))}
    target = tvm.target.Target(spec)
    if cache_dir is not None:
        work_dir = tuning_dir(cache_dir, mod, target, trials)
    reused = (Path(work_dir) / TUNING_RECORDS).exists()
    return _tuning_pipeline(0 if reused else trials, target, str(work_dir))(mod), target, reused


#: seconds a MetaSchedule builder/runner batch may take: each batch starts fresh worker processes, which
#: import TVM (~30 s on these loaded 2 cores); MetaSchedule's default of 30 s failed every build here
WORKER_TIMEOUT_S = 300


def _tuning_pipeline(trials: int, target, work_dir: str):
    """Relax's ``static_shape_tuning_pipeline`` (zero pipeline, tune, apply the database) with builder and
    runner timeouts that fit this machine (:data:`WORKER_TIMEOUT_S`)."""
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    per_task = max(4, trials // 4)

    @tvm.transform.module_pass(opt_level=0, name="BitswarmTune")
    def _tune(mod, _ctx):
        if trials > 0:
            ms.relax_integration.tune_relax(
                mod, {}, target, work_dir, trials, per_task, num_trials_per_iter=min(16, per_task),
                builder=ms.builder.LocalBuilder(timeout_sec=WORKER_TIMEOUT_S),
                runner=ms.runner.LocalRunner(timeout_sec=WORKER_TIMEOUT_S))
        return mod

    @tvm.transform.module_pass(opt_level=0, name="BitswarmTuningPipeline")
    def _pipeline(mod, _ctx):
        with target:  # MetaScheduleApplyDatabase reads the target when it is constructed
            passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(),
                      relax.get_pipeline("zero"), _tune, relax.transform.MetaScheduleApplyDatabase(work_dir)]
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline


def keep_faster(tuned: Path, default: Path, shape: tuple[int, ...], repeat: int = 20) -> TuneChoice:
    """Time both libraries on this CPU (median, TVM's thread setting as it is) and say which is faster."""
    from bitswarm.hw.tvm_runner import measure

    t = measure(tuned, shape, repeat=repeat)["latency_ms_median"]
    d = measure(default, shape, repeat=repeat)["latency_ms_median"]
    return TuneChoice("tuned" if t <= d else "default", t, d)
