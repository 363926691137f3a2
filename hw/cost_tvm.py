"""``--cost tvm``: latency of the configured model compiled with TVM for the board's CPU, over RPC.

Each configuration is exported (Brevitas -> QONNX), compiled (:func:`bitswarm.hw.tvm_build.compile_tvm`
for ``board.cpu.tvm_target``) and timed with ``time_evaluator`` through TVM's RPC: the board's
``rpc.host:port``, or -- for the ``host`` board (``rpc.start_local``) -- a server bitswarm starts
on 127.0.0.1 and stops on :meth:`TvmLatencyCost.close` (or at exit). ``latency_ms`` is the median
over ``repeat`` timings. Results are cached on disk by (model, bits key, board, target, threads);
a cache file is written atomically and only after a successful measurement.

With ``table=PATH`` (written by :mod:`bitswarm.hw.tvm_table`) the latency is predicted in
microseconds from a calibrated per-layer table instead (source ``tvm-table``).

``lowering`` (default ``int``: quantized Conv/Gemm/MatMul on integer codes, :mod:`bitswarm.hw.tvm_int`,
verified against qonnx' executor in tests and in every ``bitswarm tvm build``) is the TVM lowering
whose latency is measured; ``qcdq`` and ``float`` dequantize to float32 first.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import tempfile
from pathlib import Path

from bitswarm.atomic import write_json
from bitswarm.boards import Board
from bitswarm.hw.cost import Cost, LayerCost, register_cost, require_cache_dir
from bitswarm.models import BitConfig, ZooEntry


def cache_key(entry: ZooEntry, bits: BitConfig, board: Board, threads: int, lowering: str = "int") -> str:
    from bitswarm.cachekey import entry_digest, tool_versions

    raw = json.dumps([entry_digest(entry), bits.key(), board.name, board.cpu.tvm_target, threads, lowering,
                      tool_versions("apache-tvm", "qonnx", "brevitas", "torch")], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


@register_cost("tvm")
class TvmLatencyCost:
    name = "tvm"
    provides = ("latency_ms",)
    uses_cache = True

    def __init__(self, cache_dir: str | Path | None = None, repeat: int = 30, threads: int = 0,
                 table: str | Path | None = None, timeout: float = 5.0, use_cache: bool = True,
                 lowering: str = "int") -> None:
        from bitswarm.hw.tvm_lower import check_lowering

        self.cache_dir = require_cache_dir(cache_dir, "--cost tvm") / "tvm-cost"
        self.repeat, self.threads, self.timeout, self.use_cache = repeat, threads, timeout, use_cache
        self.lowering = check_lowering(lowering)
        self.table = None
        if table is not None:
            from bitswarm.hw.tvm_table import LatencyTable

            self.table = LatencyTable.load(table)
        self._own_servers()

    def _own_servers(self) -> None:
        """No RPC server yet; those started later are stopped by :meth:`close`, at the latest at exit."""
        self._stack = contextlib.ExitStack()
        self._endpoints: dict[str, object] = {}
        atexit.register(self.close)

    def __getstate__(self) -> dict:
        """The settings, for a search's worker process; one holding a live server stays in its process
        (its measurements then run one at a time, as the search's executor falls back to serial)."""
        if self._endpoints:
            raise TypeError("a TVM cost model holding a live RPC server cannot be sent to another process")
        return {k: v for k, v in self.__dict__.items() if k not in ("_stack", "_endpoints")}

    def __setstate__(self, state: dict) -> None:
        """In the worker: its own servers, stopped when it exits (a pool worker leaked its server before)."""
        self.__dict__.update(state)
        self._own_servers()

    # ---- RPC endpoint lifecycle ------------------------------------------------------------
    def _endpoint(self, board: Board):
        if board.name not in self._endpoints:
            from bitswarm.hw.tvm_rpc import rpc_endpoint

            self._endpoints[board.name] = self._stack.enter_context(rpc_endpoint(board, self.timeout))
        return self._endpoints[board.name]

    def close(self) -> None:
        """Stop any RPC server this cost model started."""
        self._endpoints.clear()
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- measurement -----------------------------------------------------------------------
    def measure(self, entry: ZooEntry, bits: BitConfig, board: Board) -> dict:
        """Export, compile and time one configuration (no cache)."""
        from bitswarm.hw.tvm_build import compile_tvm
        from bitswarm.hw.tvm_rpc import handshake_timeout, measure_rpc
        from bitswarm.models.export import export_qonnx

        addr = self._endpoint(board)  # fail fast on an unreachable board, before compiling
        with tempfile.TemporaryDirectory(prefix="bitswarm-tvm-") as tmp:
            qonnx = export_qonnx(entry.build(bits), entry.input_shape, Path(tmp) / "model.onnx", verify=False).path
            build = compile_tvm(qonnx, board, Path(tmp) / "tvm", verify=False, lowering=self.lowering)
            figures = measure_rpc(addr, build.lib_path, build.input_shape, repeat=self.repeat,
                                  threads=self.threads, timeout=handshake_timeout(board, self.timeout))
        return {**figures, "compile_seconds": build.seconds, "target": build.target}

    def __call__(self, entry: ZooEntry, bits: BitConfig, board: Board) -> Cost:
        if self.table is not None:
            return self.table.predict(entry, bits, board)
        path = self.cache_dir / f"{cache_key(entry, bits, board, self.threads, self.lowering)}.json"
        if self.use_cache and path.exists():
            data = json.loads(path.read_text())
            return Cost("tvm-rpc", {"latency_ms": data["latency_ms"]}, (), {**data, "cached": True})
        data = {"model": entry.name, "bits": bits.key(), "board": board.name, "threads": self.threads,
                "lowering": self.lowering,
                **self.measure(entry, bits, board)}
        if self.use_cache:
            write_json(path, data)
        return Cost("tvm-rpc", {"latency_ms": data["latency_ms"]}, (), {**data, "cached": False})


def per_layer_costs(names: list[str], values: list[float]) -> tuple[LayerCost, ...]:
    return tuple(LayerCost(n, {"latency_ms": v}) for n, v in zip(names, values, strict=True))
