"""FINN's analytical estimates of a configured model for a board, cached on disk.

``finn_estimate(entry, bits, board, target_fps)`` exports the model to QONNX, runs finn-plus'
estimate-only dataflow steps in the warm worker for the board's part and clock with FINN's
target-fps folding (the cheapest folding that reaches ``target_fps``), and returns a
:class:`~bitswarm.hw.cost.Cost` with lut, bram18, uram, dsp, cycles (the slowest layer's
initiation interval), latency_ms (critical path), throughput_fps and one LayerCost per FINN
layer. FINN estimates no flip-flops, so ``ff`` is absent rather than invented.
Results are cached in ``<cache>/finn/<key>.json``, written atomically after a successful build.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from pathlib import Path

from bitswarm.boards import Board
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Cost, LayerCost
from bitswarm.models import BitConfig, ZooEntry

WEIGHTED_FINN_OPS = ("MVAU", "VVAU")


def target_fps_for_latency(latency_ms: float) -> int:
    """The throughput a dataflow pipeline needs so each layer's interval fits the latency budget."""
    return max(1, math.ceil(1000.0 / latency_ms))


def parse_reports(reports: dict, entry: ZooEntry | None, clk_ns: float, meta: dict) -> Cost:
    perf = reports["estimate_network_performance.json"]
    res = reports["estimate_layer_resources.json"]
    cyc = reports.get("estimate_layer_cycles.json", {})
    total = res["total"]
    values = {"lut": float(total.get("LUT", 0)), "bram18": float(total.get("BRAM_18K", 0)),
              "uram": float(total.get("URAM", 0)), "dsp": float(total.get("DSP", 0)),
              "cycles": float(perf["max_cycles"]), "latency_ms": float(perf["critical_path_cycles"]) * clk_ns / 1e6,
              "throughput_fps": float(perf["estimated_throughput_fps"])}
    weighted = [s.name for s in entry.specs if s.has_weight] if entry is not None else []
    finn_weighted = [n for n in res if n.split("_")[0] in WEIGHTED_FINN_OPS]
    names = dict(zip(finn_weighted, weighted, strict=False)) if len(finn_weighted) == len(weighted) else {}
    layers = tuple(LayerCost(names.get(n, n), {"lut": float(r.get("LUT", 0)), "bram18": float(r.get("BRAM_18K", 0)),
                                               "dsp": float(r.get("DSP", 0)), "cycles": float(cyc.get(n, 0))})
                   for n, r in res.items() if n != "total")
    meta = {**meta, "bottleneck": perf.get("max_cycles_node_name"),
            "folding": reports.get("auto_folding_config.json")}
    return Cost("finn-estimate", values, layers, meta)


def _key(entry: ZooEntry, bits: BitConfig, board: Board, policy: str) -> str:
    """By content: the model (structure, code, seeded weights), bits, part, clock, folding policy, tools."""
    from bitswarm.cachekey import entry_digest, tool_versions

    blob = json.dumps([entry_digest(entry), bits.key(), board.fpga.part, board.fpga.clock_mhz, policy,
                       tool_versions("finn-plus", "qonnx", "brevitas", "torch")])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def require_fpga(board: Board) -> None:
    if board.fpga is None:
        from bitswarm.boards import list_boards, load_board

        fpga_boards = [b for b in list_boards() if load_board(b).fpga is not None]
        raise ConfigError(board.source, "fpga", f"board '{board.name}' has no FPGA, so FINN cannot target it",
                          "a board with an fpga section: " + ", ".join(fpga_boards))


def finn_estimate_onnx(onnx: Path, board: Board, cache_dir: Path, target_fps: int | None = None,
                       folding_file: str | None = None, out_dir: Path | None = None, entry: ZooEntry | None = None):
    from bitswarm.hw.finn_worker import get_worker

    require_fpga(board)
    f = board.fpga
    with tempfile.TemporaryDirectory(prefix="bitswarm-finn-") as tmp:
        build_dir = out_dir or Path(tmp) / "build"
        reports = get_worker(cache_dir).build(onnx, build_dir, part=f.part, board=f.finn_board,
                                              clk_ns=f.clock_period_ns, target_fps=target_fps,
                                              folding_file=folding_file)
    meta = {"target_fps": target_fps, "folding_file": folding_file, "part": f.part, "clock_mhz": f.clock_mhz}
    return parse_reports(reports, entry, f.clock_period_ns, meta)


def finn_estimate(entry: ZooEntry, bits: BitConfig, board: Board, cache_dir: Path, target_fps: int = 10000) -> Cost:
    from bitswarm.models.export import export_qonnx
    from bitswarm.models.finn_support import check_finn_support

    require_fpga(board)
    policy = f"fps:{target_fps}"
    cache = cache_dir / "finn" / f"{_key(entry, bits, board, policy)}.json"
    if cache.exists():
        d = json.loads(cache.read_text())
        return Cost(d["source"], d["values"], tuple(LayerCost(n, v) for n, v in d["per_layer"]), d["meta"])
    import torch

    with torch.random.fork_rng():  # FINN sizes accumulators from weight values: same weights, same estimate
        torch.manual_seed(0)
        model = entry.build(bits).eval()
    check_finn_support(model)
    tmp = Path(tempfile.mkdtemp(prefix="bitswarm-finn-export-"))
    try:
        onnx = export_qonnx(model, entry.input_shape, tmp / "model.onnx", verify=False).path
        cost = finn_estimate_onnx(onnx, board, cache_dir, target_fps=target_fps, entry=entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    part = cache.with_suffix(".tmp")
    part.write_text(json.dumps({"source": cost.source, "values": dict(cost.values), "meta": cost.meta,
                                "per_layer": [[lc.name, dict(lc.values)] for lc in cost.per_layer]}, default=str))
    part.replace(cache)
    return cost
