"""The CPU half of a deploy package: the board's native TVM runner (no Python on the board), its README
and licences, and a check that it computes what the host's TVM build computes (ARM under qemu-user)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from bitswarm.boards import Board
from bitswarm.errors import BitswarmError

CHECK_INPUTS = 3
CHECK_ATOL = 1e-4  # the runner against TVM's Python runtime on the host library


class RunnerMismatchError(BitswarmError):
    """The board's native runner computes something else than the host's TVM build."""


def package_native_runner(board: Board, lib: Path, host_lib: Path, pkg: Path, cache_dir: Path,
                          input_shape: tuple[int, ...]) -> dict:
    """Build (cached by target) and copy the runner for ``board``'s CPU into ``pkg/runner/<target>/`` and
    check it on ``lib`` against ``host_lib``; returns what the report and the SSH step need."""
    from bitswarm.hw import tvm_native as native

    target = native.runner_target_for(board)
    built = native.build_runner(target, cache_dir)
    info = json.loads((built.parent / "build.json").read_text()) if (built.parent / "build.json").exists() else {}
    dst = pkg / "runner" / target
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, dst / "runner")
    for name, path in native.runtime_licenses().items():
        shutil.copyfile(path, dst / name)
    readme = native.runner_readme(target, board.name, min_glibc=info.get("min_glibc"))
    where = f"In this package: runner/{target}/runner, and {lib.relative_to(pkg)} with its model.json.\n\n"
    (dst / "README.md").write_text(where + readme)
    return {"target": target, "runner": str((dst / "runner").relative_to(pkg)), "min_glibc": info.get("min_glibc"),
            **check_runner(dst / "runner", target, lib, host_lib, input_shape)}


def check_runner(runner: Path, target: str, lib: Path, host_lib: Path, input_shape: tuple[int, ...]) -> dict:
    """Run ``runner`` on ``lib`` (under qemu for ARM) and compare with TVM's Python runtime on ``host_lib``
    over fresh inputs; a reference that does not vary over them proves nothing and is not compared."""
    from bitswarm.hw.tvm_build import output_spread, run_library
    from bitswarm.hw.tvm_native import emulator_for, run_runner

    emulator = emulator_for(target)
    tool = emulator.split()[0] if emulator else None
    if tool and shutil.which(tool) is None:
        return {"checked": f"not run here: {tool} is missing (apt-get install qemu-user)"}
    rng = np.random.default_rng(7)
    xs = [rng.uniform(-1, 1, (1, *input_shape)).astype(np.float32) for _ in range(CHECK_INPUTS)]
    refs = [run_library(host_lib, x) for x in xs]
    if output_spread(refs) < 1e-6:
        return {"checked": "not compared: the host build's output is the same for every input"}
    diff = max(float(np.abs(run_runner(runner, lib, x, emulator=emulator)[0] - r).max())
               for x, r in zip(xs, refs, strict=True))
    if diff > CHECK_ATOL:
        raise RunnerMismatchError(f"the {target} runner on {lib.name} differs from the host TVM build by {diff:.3g} "
                                  f"(tolerance {CHECK_ATOL:g}); nothing was packaged as checked")
    return {"checked": f"under {tool}" if tool else "on this host", "inputs": CHECK_INPUTS,
            "max_abs_diff_vs_host": diff}
