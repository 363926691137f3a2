"""The FINN flow for a board: estimates, folding and HLS/RTL code generation, then the vendor step.

``build_finn`` runs finn-plus (in the warm worker) from the QONNX model through streamlining,
conversion to hardware layers, target-fps folding, estimate reports, weight offsets and the
generation of every layer's HLS C++ / RTL sources (copied into ``out_dir/codegen``). Synthesis,
stitched IP, bitstream and the PYNQ driver need Vitis HLS and Vivado: where they are missing the
result says so in one line (``missing_tool``) instead of failing, listing what was produced.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bitswarm.boards import Board
from bitswarm.hw.cost import Cost

VENDOR_STEPS = "HLS synthesis, stitched IP, bitstream and PYNQ driver (step_generate_hardware onwards)"


@dataclass(frozen=True)
class FinnBuildResult:
    out_dir: Path
    steps: list[tuple[str, float]]
    estimates: Cost
    missing_tool: str | None
    verification: dict | None = None  # hw/finn_verify.Verification.to_dict(), when inputs were given


def vendor_tools_missing(env) -> str | None:
    """One line naming the missing vendor tools, or None when Vivado and Vitis HLS are there."""
    missing = [name for name, path, exe in (("Vivado", env.vivado, "vivado"), ("Vitis HLS", env.vitis_hls, "vitis_hls"))
               if path is None and shutil.which(exe) is None]
    if not missing:
        return None
    return (f"{' and '.join(missing)} not installed (XILINX_VIVADO / vitis_hls not found): stopped before "
            f"{VENDOR_STEPS}; produced estimates, folding config and generated HLS/RTL sources")


def _copy_codegen(model_path: Path, dest: Path) -> int:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    n = 0
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "code_gen_dir_ipgen" and attr.s:
                src = Path(attr.s.decode())
                if src.is_dir():
                    shutil.copytree(src, dest / node.name, dirs_exist_ok=True)
                    n += 1
    return n


def build_finn(qonnx_path: Path, board: Board, out_dir: Path, *, target_fps: int | None = 10000,
               folding_file: str | None = None, stop_after: str | None = None, env,
               verify=None) -> FinnBuildResult:
    """``verify`` (a :class:`~bitswarm.hw.finn_verify.VerifyInputs`): FINN's intermediate models are run
    on those inputs and compared with the QONNX model; a mismatch raises ``FinnVerificationError``."""
    from bitswarm.hw.finn_estimate import parse_reports, require_fpga
    from bitswarm.hw.finn_worker import CODEGEN_STEPS, ESTIMATE_STEPS, get_worker

    require_fpga(board)
    f = board.fpga
    steps = ESTIMATE_STEPS if stop_after == "estimates" else CODEGEN_STEPS
    t0 = time.time()
    reports = get_worker(env.cache_dir).build(Path(qonnx_path), out_dir / "build", part=f.part, board=f.finn_board,
                                              clk_ns=f.clock_period_ns, target_fps=None if folding_file else target_fps,
                                              folding_file=folding_file, steps=steps)
    est = parse_reports(reports, None, f.clock_period_ns, {"target_fps": target_fps, "folding_file": folding_file})
    timings = [("finn estimates" if steps == ESTIMATE_STEPS else "finn estimates + codegen", time.time() - t0)]
    if steps == CODEGEN_STEPS:
        final = out_dir / "build" / "intermediate_models" / "step_hw_codegen.onnx"
        n = _copy_codegen(final, out_dir / "codegen") if final.exists() else 0
        timings.append((f"copy generated sources ({n} layers)", 0.0))
    checked = None
    if verify is not None:
        from bitswarm.hw.finn_verify import verify_build

        v = verify_build(Path(qonnx_path), out_dir / "build", verify, env.cache_dir)
        timings.append((f"verify FINN's graphs on {v.n_inputs} inputs", v.seconds))
        checked = v.to_dict()
    return FinnBuildResult(out_dir, timings, est, vendor_tools_missing(env), checked)
