#!/usr/bin/env python3
"""Standalone TVM runner: load an exported Relax library, time it, print one JSON line.

Needs only numpy and a TVM runtime (``import tvm``), so it runs on a board::

    python3 tvm_runner.py tvm/model.so --shape 1,1,28,28 --repeat 50 [--threads 2]

The last line of stdout is JSON: ``latency_ms_mean``, ``latency_ms_median``, ``latency_ms_std``,
``latency_ms_min``, ``repeat``, ``number``, ``threads``, ``output_shape``, ``device``. Errors go
to stderr as one line with exit status 2. Without ``--shape`` the shape is read from the
``<lib>.json`` written next to the library by ``bitswarm.hw.tvm_build``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Run as a script from bitswarm's flows/ directory, the sibling tvm.py would shadow the tvm package.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)


def _shape(lib: Path, text: str | None) -> tuple[int, ...]:
    if text:
        return tuple(int(d) for d in text.split(","))
    info = lib.with_suffix(".json")
    if not info.exists():
        raise ValueError(f"no --shape given and no {info.name} next to {lib}")
    return tuple(json.loads(info.read_text())["input_shape"])


def set_threads(threads: int) -> None:
    """Size TVM's CPU thread pool (0 keeps TVM's default: one per core)."""
    import tvm

    if threads > 0:
        tvm.get_global_func("runtime.config_threadpool")(0, threads)  # affinity mode 0 = big cores


def measure(lib_path: str | Path, shape: tuple[int, ...], repeat: int = 50, number: int = 0,
            seed: int = 0, threads: int = 0) -> dict:
    """Time ``main`` of the library at ``lib_path`` on the local CPU; ``number=0`` picks it (>= ~1 ms per repeat)."""
    import numpy as np
    import tvm
    from tvm.runtime.vm import VirtualMachine

    set_threads(threads)

    lib_path = Path(lib_path)
    if not lib_path.exists():
        raise FileNotFoundError(f"no library at {lib_path}")
    dev = tvm.cpu()
    vm = VirtualMachine(tvm.runtime.load_module(str(lib_path)), dev)
    x = tvm.runtime.tensor(np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32"), dev)
    out = vm["main"](x)
    out = out if hasattr(out, "numpy") else out[0]
    if number <= 0:  # enough calls per repeat to take ~1 ms, as TVM's min_repeat_ms would
        probe = vm.time_evaluator("main", dev, number=3, repeat=1)(x).mean
        number = max(1, min(1000, int(1e-3 / max(probe, 1e-7))))
    res = vm.time_evaluator("main", dev, number=number, repeat=repeat)(x)
    ms = [r * 1e3 for r in res.results]
    return {"lib": str(lib_path), "device": "cpu", "input_shape": list(shape), "output_shape": list(out.shape),
            "latency_ms_mean": res.mean * 1e3, "latency_ms_median": res.median * 1e3,
            "latency_ms_std": res.std * 1e3, "latency_ms_min": min(ms), "repeat": repeat, "number": number,
            "threads": threads or None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("lib", help="the exported library (.so)")
    p.add_argument("--shape", help="input shape with batch, comma-separated, e.g. 1,1,28,28")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--number", type=int, default=0, help="calls per repeat (0: about 1 ms worth)")
    p.add_argument("--threads", type=int, default=0, help="TVM worker threads (0: TVM's default)")
    args = p.parse_args(argv)
    try:
        result = measure(args.lib, _shape(Path(args.lib), args.shape), args.repeat, args.number, threads=args.threads)
    except Exception as e:  # one line for the caller (often over SSH)
        print(f"tvm_runner: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}",
              file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
