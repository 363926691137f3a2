"""A warm finn-plus worker: FINN is imported once in a child process that serves build requests.

FINN's import costs ~7 s; a search asks for hundreds of estimates, each ~1-2 s of steps. The
worker keeps one spawned process alive and answers over a pipe. Without Vivado, finn-plus
refuses to import ``finn.builder.build_dataflow`` (its XSI simulator check); the worker clears
``finn.xsi``'s lazy names first, as measured in ../shared/notes/toolchain.md.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import multiprocessing as mp
import re
import traceback
from pathlib import Path

from bitswarm.errors import BitswarmError

ESTIMATE_STEPS = "estimate"
REPORTS = ("estimate_network_performance.json", "estimate_layer_resources.json", "estimate_layer_cycles.json",
           "auto_folding_config.json", "op_and_param_counts.json")


class FinnError(BitswarmError):
    """finn-plus failed on a model (the message carries FINN's last error line)."""


MAX_CAUSE = 600
_LOGGED_ERROR = re.compile(r"^\[[^\]]*\]ERROR:.*?(FINN (?:INTERNAL COMPILER )?ERROR: .*)$")
_STEP = re.compile(r"Running step: (\S+)")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_CAUSE else text[:MAX_CAUSE] + " ..."


def exception_text(tb: str) -> str:
    """The exception of a formatted traceback: its last unindented lines (a message may span several),
    without the type name of bitswarm's own :class:`FinnError`."""
    lines = tb.rstrip().splitlines()
    start = max((i + 1 for i, line in enumerate(lines) if line.startswith(" ")), default=0)
    text = _short(" ".join(lines[start:]) or (lines[-1] if lines else "no traceback"))
    return text.removeprefix(f"{FinnError.__module__}.{FinnError.__qualname__}: ")


def _logged_entry(lines: list[str], i: int, head: str) -> str:
    """A logged error entry: its first line, the lines it continues on, and for an exception without a
    message the type that ends the traceback FINN printed after it."""
    more = itertools.takewhile(lambda s: s.strip() and not s.startswith(("[", "\u256d")), lines[i + 1:])
    entry = " ".join([head, *more]).strip()
    if entry.endswith("ERROR:"):
        entry += " " + next((s.strip(" \u2502") for s in reversed(lines) if s.strip(" \u2502")), "")
    return entry


def build_log_cause(log: Path, rc: int) -> str:
    """FINN's own error from a failed build's ``build_dataflow.log`` (FINN catches the exception, logs it
    and returns non-zero): its last ``FINN ... ERROR:`` entry and the step it happened in."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"build_dataflow_cfg returned {rc} and left no readable log ({e})"
    steps = [m.group(1) for m in map(_STEP.search, lines) if m]
    at = f" (in {steps[-1]})" if steps else ""
    hits = [(i, m.group(1)) for i, m in enumerate(map(_LOGGED_ERROR.match, lines)) if m]
    if hits:
        return _short(_logged_entry(lines, *hits[-1]) + at)
    return _short(f"build_dataflow_cfg returned {rc}{at}; last log line: {lines[-1] if lines else '(empty)'}")


def _serve(conn, env: dict, log_path: str) -> None:  # runs in the child
    import sys

    from bitswarm.env import apply_environment

    apply_environment(env)
    Path(env["FINN_BUILD_DIR"]).mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the worker
    sys.stdout = sys.stderr = log
    import finn.xsi as fx

    for name in fx._LAZY_NAMES:
        setattr(fx, name, None)
    import finn.builder.build_dataflow as build
    import finn.builder.build_dataflow_config as bc

    conn.send(("ready", None))
    while True:
        req = conn.recv()
        if req is None:
            return
        try:
            if req.get("kind") == "verify":
                from bitswarm.hw.finn_verify import execute_levels

                conn.send(("ok", execute_levels(req["onnx"], req["models_dir"], req["x"])))
                continue
            conn.send(("ok", _build(build, bc, req)))
        except Exception:  # every failure goes back to the caller, with FINN's traceback
            conn.send(("err", traceback.format_exc()))


def step_hw_codegen(model, cfg):
    """HLS C++ / RTL code generation of every dataflow layer (FINN's PrepareIP), without synthesis.

    finn-plus' own ``step_generate_hardware`` also runs Vitis HLS and checks Vivado; this step
    stops at the generated sources, which is what can be made without the vendor tools.
    """
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP

    return model.transform(PrepareIP(cfg._resolve_fpga_part(), cfg._resolve_hls_clk_period()))


CODEGEN_STEPS = "codegen"


def _build(build, bc, req: dict) -> dict:
    steps = {ESTIMATE_STEPS: bc.estimate_only_dataflow_steps,
             CODEGEN_STEPS: [*bc.estimate_only_dataflow_steps, "step_assign_ddr_weight_offsets", step_hw_codegen],
             }.get(req["steps"], req["steps"])
    cfg = bc.DataflowBuildConfig(
        output_dir=req["out_dir"], synth_clk_period_ns=req["clk_ns"], target_fps=req.get("target_fps"),
        folding_config_file=req.get("folding_file"), board=req["board"], fpga_part=req["part"],
        shell_flow_type=bc.ShellFlowType.VIVADO_ZYNQ, steps=steps,
        generate_outputs=[bc.DataflowOutputType.ESTIMATE_REPORTS])
    rc = build.build_dataflow_cfg(req["onnx"], cfg)
    if rc != 0:  # read now: the build dir is often a temporary one, deleted when the caller sees the error
        raise FinnError(build_log_cause(Path(req["out_dir"]) / "build_dataflow.log", rc))
    report = Path(req["out_dir"]) / "report"
    return {name: json.loads((report / name).read_text()) for name in REPORTS if (report / name).exists()}


class FinnWorker:
    def __init__(self, build_dir: Path, log_path: Path):
        from bitswarm.env import process_environment_for_finn

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = ctx.Process(target=_serve, args=(child, process_environment_for_finn(build_dir), str(log_path)),
                                daemon=True)
        self.proc.start()
        self.log_path = log_path
        self._expect("ready", timeout=300)

    def _expect(self, kind: str, timeout: float):
        if not self.conn.poll(timeout):
            raise FinnError(f"the FINN worker did not answer within {timeout:.0f} s (log: {self.log_path})")
        status, payload = self.conn.recv()
        if status == "err":
            with contextlib.suppress(OSError), open(self.log_path, "a") as log:  # the traceback stays readable
                log.write(payload)
            raise FinnError(f"FINN failed: {exception_text(payload)} (full traceback in {self.log_path})")
        return payload

    def build(self, onnx: Path, out_dir: Path, *, part: str, board: str, clk_ns: float, target_fps: int | None = None,
              folding_file: str | None = None, steps=ESTIMATE_STEPS, timeout: float = 1800) -> dict:
        return self._request({"onnx": str(onnx), "out_dir": str(out_dir), "part": part, "board": board,
                              "clk_ns": clk_ns, "target_fps": target_fps, "folding_file": folding_file,
                              "steps": steps}, timeout)

    def execute_levels(self, onnx: Path, models_dir: Path, x, timeout: float = 3600) -> dict:
        """Outputs of the QONNX model and of FINN's saved intermediate models on ``x`` (see finn_verify)."""
        return self._request({"kind": "verify", "onnx": str(onnx), "models_dir": str(models_dir), "x": x}, timeout)

    def _request(self, req: dict, timeout: float):
        self.conn.send(req)
        try:
            return self._expect("ok", timeout)
        except FinnError:
            if not self.proc.is_alive():  # a dead worker is replaced on the next get_worker()
                _WORKERS.clear()
            raise

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(None)
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()


_WORKERS: dict[str, FinnWorker] = {}


def get_worker(cache_dir: Path) -> FinnWorker:
    """The process-wide warm worker (started on first use, stopped at exit)."""
    key = str(cache_dir)
    w = _WORKERS.get(key)
    if w is None or not w.proc.is_alive():
        w = _WORKERS[key] = FinnWorker(cache_dir / "finn_build", cache_dir / "logs" / "finn_worker.log")
        atexit.register(w.close)
    return w
