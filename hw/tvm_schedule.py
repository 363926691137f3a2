"""Default CPU schedules for TVM's Relax builds: Relax's CPU pipeline (fold, fuse) plus a schedule of
every fused loop nest (register tiles, vectorized, epilogue fused).

On CPU ``tvm.compile``'s default Relax pipeline only legalizes: no constant folding, no fusion and no
schedule (naive scalar loop nests, weights transposed on every call): CNV took ~60 ms, ~4 ms with this.
"""

from __future__ import annotations

import logging

import numpy as np


def _divisor(n: int, cap: int) -> int:
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)


def _extent(sch, loop) -> int:
    return int(sch.get(loop).extent)


def _schedule_reduction(sch, block, vector: int = 8, tile: int = 8) -> None:
    """Register tile of the last spatial axis (vectorized) x the first other one (unrolled), reduction
    loops outside it, accumulators local, the elementwise epilogue computed per tile."""
    loops, ivs = sch.get_loops(block), sch.get(block).iter_vars
    if len(loops) != len(ivs):
        return  # not one loop per block axis
    pairs = list(zip(loops, ivs, strict=True))
    spatial = [lp for lp, iv in pairs if int(iv.iter_type) == 0]
    reduce_ = [lp for lp, iv in pairs if int(iv.iter_type) == 2]
    if len(spatial) + len(reduce_) != len(loops) or any(_extent(sch, lp) != int(iv.dom.extent) for lp, iv in pairs):
        return
    other = next((lp for lp in spatial[:-1] if _extent(sch, lp) > 1), None)
    vo, vi = sch.split(spatial[-1], [None, _divisor(_extent(sch, spatial[-1]), vector if other else 32)])
    rest = [lp for lp in spatial[:-1] if lp != other]
    if other is None:
        sch.reorder(*rest, vo, *reduce_, vi)
    else:
        to, ti = sch.split(other, [None, _divisor(_extent(sch, other), tile)])
        sch.reorder(to, *rest, vo, *reduce_, ti, vi)
        sch.unroll(ti)
    write_back = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(write_back, vo)
    sch.vectorize(vi)
    sch.decompose_reduction(block, reduce_[0])
    _try(sch.reverse_compute_inline, *sch.get_consumers(write_back))
    _try(sch.vectorize, sch.get_loops(write_back)[-1])


def _try(primitive, *args) -> None:
    """Apply a schedule primitive to each arg where TVM allows it (a refused one changes nothing)."""
    for a in args:
        try:
            primitive(a)
        except Exception:  # noqa: BLE001, S110 - TVM raises ScheduleError subclasses
            pass


def _pads(block) -> bool:
    """The block writes a larger buffer than it reads (padding: inlined, it would branch in the inner loop)."""
    def size(region):
        return int(np.prod([int(d) for d in region.source.shape]))

    return bool(block.reads) and size(block.writes[0]) > max(size(r) for r in block.reads)


def _schedule_func(func):
    """A default CPU schedule of one fused PrimFunc (None: left as it is)."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    reductions = [b for b in blocks if any(int(iv.iter_type) == 2 for iv in sch.get(b).iter_vars)]
    if len(reductions) > 1:
        return None
    # elementwise stages recomputed in place (padding stays its own loop nest)
    _try(sch.compute_inline, *[b for b in blocks[:-1] if b not in reductions and not _pads(sch.get(b))])
    if reductions:
        _schedule_reduction(sch, reductions[0])
    else:
        fused = sch.fuse(*sch.get_loops(sch.get_child_blocks(sch.get_sblock("root"))[-1]))
        if _extent(sch, fused) >= 8:
            sch.vectorize(sch.split(fused, [None, _divisor(_extent(sch, fused), 16)])[1])
    return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def cpu_schedule():
    """Module pass: :func:`_schedule_func` on every PrimFunc; one it cannot schedule keeps its loops."""
    import tvm
    from tvm import tirx

    @tvm.transform.module_pass(opt_level=0, name="BitswarmCpuSchedule")
    def _pass(mod, _ctx):
        done = {}
        for gv, func in mod.functions_items():
            if isinstance(func, tirx.PrimFunc) and "tirx.is_scheduled" not in func.attrs:
                try:
                    done[gv] = _schedule_func(func)
                except Exception as e:  # noqa: BLE001 - a schedule TVM refuses: the naive loops stay
                    logging.getLogger(__name__).debug("no CPU schedule for %s: %s", gv.name_hint, e)
                    done[gv] = None
        for gv, func in done.items():
            if func is not None:
                mod[gv] = func
        return mod

    return _pass


def cpu_pipeline(target):
    """Relax's CPU pipeline (legalize, fold constants, fuse) with :func:`cpu_schedule` before lowering."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    @tvm.transform.module_pass(opt_level=0, name="BitswarmCpuPipeline")
    def _pipeline(mod, _ctx):
        passes = (cpu.library_dispatch_passes(target) + cpu.legalize_passes(target) + [cpu_schedule()]
                  + cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline
