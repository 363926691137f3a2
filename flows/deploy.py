"""The deploy flow behind ``make deploy BOARD=…`` / ``bitswarm deploy``.

Steps (each a :class:`~bitswarm.flows.steps.Step`; start/stop at any of them):

``bits``    the bit configuration: given (``--config``), or found by a small search
``train``   float training (cached) + quantization-aware fine-tune; test accuracy
``export``  Brevitas -> QONNX, verified against PyTorch (``model.qonnx.onnx``)
``finn``    FINN-mappability check, then the FINN flow for the board (estimates, code
            generation; stops with one line naming the missing vendor tool)
``tvm``     TVM binary for the board's CPU (ARM for the PYNQ-Z2), latency on this host; for a foreign
            CPU the native runner (``runner/<target>/``: TVM runtime, no Python), checked under qemu
``uniform`` the same model at uniform 2/4/8 bits, for comparison
``board``   with an SSH host in the board config: push, run, measure
``report``  ``summary.json`` -> report.html / report.md / report.json
``manifest`` versions, command, seed, sha256 of every file

The package is assembled in ``<out>/<board>/.partial-<run-id>/`` and renamed to
``<out>/<board>/<run-id>/`` only when every step has succeeded, so an interrupted or failed
deploy leaves no package behind; the partial directory keeps its flow state and search journal,
and re-running the same command resumes at the first unfinished step.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bitswarm.boards import Board
from bitswarm.env import Environment
from bitswarm.flows.steps import State, Step, StepError, run_flow
from bitswarm.locks import hold_lock


class RunMemo(dict):
    """What one deploy run loads once and its steps share (the model entry and its dataset, read and
    hashed once instead of once per step). It lives as long as the run's config; nothing is on disk."""

    def __repr__(self) -> str:  # not part of what a deploy's result depends on (config_digest)
        return "RunMemo()"


@dataclass(frozen=True)
class DeployConfig:
    board: Board
    env: Environment
    model: str = "tfc"
    dataset: str | None = None
    data_dir: str | None = None
    weights: str | None = None
    bits_file: str | None = None  # deploy this configuration without searching
    qonnx: str | None = None  # deploy this QONNX file as it is (no search, no training)
    seed: int = 0
    search: dict = field(default_factory=dict)  # options for the small search (see _search_bits)
    fp_epochs: int | None = None
    qat_epochs: int | None = None
    out_root: Path = Path("deploy")
    run_id: str = ""
    command: str = ""
    tvm: bool = True
    verify_samples: int | None = None  # test images FINN's graphs are verified on (0: none; None: the profile's)
    board_step: bool = True  # run and time the package on the board named in its config (ssh); False: skip it
    target_fps: int | None = None  # FINN's folding target (None: the model's deploy profile, 10,000 for TFC)
    memo: RunMemo = field(default_factory=RunMemo, compare=False, repr=False)

    def profile(self):
        from bitswarm.flows.deploy_search import profile_for

        return profile_for(self.model)

    def fps(self) -> int:
        return self.target_fps or self.profile().target_fps

    def n_verify(self) -> int:
        return self.profile().verify_samples if self.verify_samples is None else self.verify_samples


def _entry_and_data(cfg: DeployConfig, bits_spec: str | None = None):
    """The model entry, its dataset (loaded once per run: ``cfg.memo``) and, with ``bits_spec``, its bits
    (validated before any data is read)."""
    from bitswarm.workflow import parse_bits, resolve_model_and_data

    candidates = cfg.board.bit_candidates + (32,)
    if "entry-data" in cfg.memo:
        entry, data = cfg.memo["entry-data"]
        return entry, data, parse_bits(bits_spec, entry, candidates) if bits_spec else None
    entry, data, bits = resolve_model_and_data(cfg.model, cfg.dataset, cfg.data_dir, cfg.env, cfg.weights,
                                               bits_spec, candidates)
    cfg.memo["entry-data"] = (entry, data)
    return entry, data, bits


def _pkg(state: State) -> Path:
    return Path(state["package_dir"])


def step_bits(state: State, cfg: DeployConfig) -> State:
    if cfg.qonnx:
        return {**state, "bits": None, "search": None}
    if cfg.bits_file:
        entry, _, bits = _entry_and_data(cfg, cfg.bits_file)
        search = None
    else:
        from bitswarm.flows.deploy_search import run_small_search

        entry, data, _ = _entry_and_data(cfg)
        bits, search = run_small_search(cfg, entry, data, _pkg(state))
    bits.save(_pkg(state) / "bits.yaml")
    return {**state, "bits": bits.to_dict()["layers"], "search": search}


def step_train(state: State, cfg: DeployConfig) -> State:
    if cfg.qonnx:
        return state
    from bitswarm.models import BitConfig
    from bitswarm.train import evaluate
    from bitswarm.workflow import finetune_quantized, fp_recipe, qat_recipe, scaled, train_float

    entry, data, _ = _entry_and_data(cfg)
    bits = BitConfig.from_dict({"layers": state["bits"]})
    fp = train_float(entry, data, cfg.seed, scaled(fp_recipe(entry.dataset, entry.name), cfg.fp_epochs), cfg.env)
    qat = scaled(qat_recipe(entry.dataset, entry.name), cfg.qat_epochs)
    q = finetune_quantized(entry, bits, data, cfg.seed, qat, fp, cfg.env, start=_start(state, cfg, entry, data, fp))
    torch.save(q.model.state_dict(), _pkg(state) / "model_state.pt")
    acc = {"fp_test": evaluate(fp.model, data.test), "val": q.val_acc, "test": evaluate(q.model, data.test)}
    return {**state, "accuracy": acc, "dataset_note": data.note, "input_shape": list(entry.input_shape),
            "model_name": entry.name}


def _start(state: State, cfg: DeployConfig, entry, data, fp):
    """A one-shot search's winner starts its QAT from the supernet (inherited, BatchNorm re-estimated) and
    learns from the float model too; other runs start from the float weights (None)."""
    if (state.get("search") or {}).get("fitness") != "oneshot":
        return None
    from bitswarm.models import BitConfig
    from bitswarm.models.supernet import recalibrate_bn
    from bitswarm.search.oneshot import open_oneshot
    from bitswarm.workflow import Start

    shot = open_oneshot(entry, cfg.board, data, fp.model.state_dict(), cfg.env.cache_dir)
    bits = BitConfig.from_dict({"layers": state["bits"]})
    return Start(recalibrate_bn(shot.net.inherit(bits), shot.calib), shot.tag)


def _trained_model(state: State, cfg: DeployConfig):
    from bitswarm.models import BitConfig

    entry, _, _ = _entry_and_data(cfg)
    model = entry.build(BitConfig.from_dict({"layers": state["bits"]}))
    model.load_state_dict(torch.load(_pkg(state) / "model_state.pt", weights_only=True))
    return model.eval()


def step_export(state: State, cfg: DeployConfig) -> State:
    dest = _pkg(state) / "model.qonnx.onnx"
    if cfg.qonnx:
        from bitswarm.flows.qonnx_in import import_qonnx

        shape = import_qonnx(cfg.qonnx, dest, for_finn=cfg.board.fpga is not None)
        return {**state, "qonnx": str(dest), "export_max_abs_diff": None, "input_shape": shape,
                "model_name": Path(cfg.qonnx).name}
    from bitswarm.models.export import export_qonnx

    r = export_qonnx(_trained_model(state, cfg), tuple(state["input_shape"]), dest)
    return {**state, "qonnx": str(dest), "export_max_abs_diff": r.max_abs_diff}


def step_finn(state: State, cfg: DeployConfig) -> State:
    if cfg.board.fpga is None:
        return {**state, "finn": None}
    from bitswarm.models.finn_support import UnsupportedForFinnError, check_finn_support

    if not cfg.qonnx:
        try:
            check_finn_support(_trained_model(state, cfg))
        except UnsupportedForFinnError as e:
            return {**state, "finn": {"unsupported": str(e), "missing_tool": None}}
    from bitswarm.flows.finn import build_finn

    inputs = _verify_inputs(state, cfg) if cfg.n_verify() else None
    r = build_finn(Path(state["qonnx"]), cfg.board, _pkg(state) / "finn", env=cfg.env, verify=inputs,
                   target_fps=cfg.fps())
    est = r.estimates
    return {**state, "finn": {"total": dict(est.values), "missing_tool": r.missing_tool,
                              "verification": r.verification,
                              "per_layer": [{"name": lc.name, **lc.values} for lc in est.per_layer],
                              "steps": [{"step": n, "seconds": s} for n, s in r.steps], "meta": dict(est.meta)}}


def _verify_inputs(state: State, cfg: DeployConfig):
    """The first ``verify_samples`` test images, as the QONNX model takes them, with PyTorch's predictions
    (none for a QONNX file deployed as it is)."""
    from bitswarm.data import normalize
    from bitswarm.errors import ConfigError
    from bitswarm.hw.finn_verify import VerifyInputs

    _, data, _ = _entry_and_data(cfg)
    test = data.test.subset(cfg.n_verify())
    x = normalize(test.x)
    if list(x.shape[1:]) != list(state["input_shape"]):
        raise ConfigError(cfg.qonnx or cfg.model, "input shape", f"the model takes {state['input_shape']} but "
                          f"{data.note} images are {list(x.shape[1:])}", "--model/--dataset of the data it was "
                          "trained on (FINN's build is verified on its test images)")
    pred = None
    if not cfg.qonnx:
        with torch.no_grad():
            pred = _trained_model(state, cfg)(x).argmax(1).numpy()
    return VerifyInputs(x.numpy(), test.y.numpy(), pred)


def _run_runner(pkg: Path, lib: Path, repeat: int = 30) -> dict:
    """Time a host library with the package's own standalone runner (what a board runs)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(pkg / "runner" / "tvm_runner.py"), str(lib), "--repeat", str(repeat)],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def step_tvm(state: State, cfg: DeployConfig) -> State:
    if not cfg.tvm:
        return {**state, "tvm": []}
    from bitswarm.boards import load_board
    from bitswarm.hw.tvm_build import compile_tvm, is_host_target

    pkg = _pkg(state)
    (pkg / "runner").mkdir(exist_ok=True)
    shutil.copyfile(Path(__file__).resolve().parent.parent / "hw" / "tvm_runner.py", pkg / "runner" / "tvm_runner.py")
    shape = tuple(state["input_shape"])
    items = []
    boards = [cfg.board] if is_host_target(cfg.board.cpu.tvm_target) else [cfg.board, load_board("host")]
    built = [(board, compile_tvm(Path(state["qonnx"]), board, pkg / f"tvm-{board.name}", input_shape=shape))
             for board in boards]
    host_lib = next((Path(r.lib_path) for b, r in built if is_host_target(b.cpu.tvm_target)), None)
    for board, r in built:
        item = {"target": f"{board.name}: {json.dumps(r.target)}", "lib": str(Path(r.lib_path).relative_to(pkg)),
                "verified_max_abs_diff": r.verified_max_abs_diff, "latency_ms": None}
        if is_host_target(board.cpu.tvm_target):
            item["latency_ms"] = _run_runner(pkg, Path(r.lib_path))["latency_ms_median"]
        elif host_lib is not None and board.cpu.tvm_target.get("kind") == "llvm":
            from bitswarm.flows.cpu_package import package_native_runner

            item["native_runner"] = package_native_runner(board, Path(r.lib_path), host_lib, pkg, cfg.env.cache_dir,
                                                          shape)
        items.append(item)
    return {**state, "tvm": items}


def step_uniform(state: State, cfg: DeployConfig) -> State:
    """The searched design beside FINN's hand-built uniform designs (w1a1, w1a2, w2a2) and uniform 2/4/8 bits:
    bit operations, FINN's cost at the deploy's folding target (the search's cost model) for the FINN designs,
    and their test accuracy with the same QAT recipe where the project ships it
    (``models/pretrained/<model>-finn-designs.json``, checked against model, data, recipe and start)."""
    if cfg.qonnx:
        return {**state, "uniform": []}
    from bitswarm.hw.cost import get_cost_model
    from bitswarm.models import FINN_DESIGNS, BitConfig
    from bitswarm.workflow import fp_recipe, qat_recipe, reference_designs, scaled

    entry, data, _ = _entry_and_data(cfg)
    # exact bit metrics from the configuration (`--cost qonnx` counts 1-bit weights as 32-bit: NOTES.md)
    bitops, hw = get_cost_model("bitops"), _design_cost(state, cfg)
    ref = reference_designs(entry, data, scaled(qat_recipe(entry.dataset, entry.name), cfg.qat_epochs),
                            scaled(fp_recipe(entry.dataset, entry.name), cfg.fp_epochs))
    rows = []
    for w, a in FINN_DESIGNS:
        bits, name = entry.finn_design_bits(w, a), f"w{w}a{a}"
        c, failed = _try_cost(hw, entry, bits, cfg)
        row = _design_row(f"{name} (FINN-style)", bitops(entry, bits, cfg.board), c and c.values, cfg,
                          ref.get(name, {}).get("test_acc"))
        rows.append({**row, "FINN cost": failed} if failed else row)
    for b in (2, 4, 8):
        rows.append(_design_row(f"w{b}a{b} (edges kept)", bitops(entry, entry.uniform_bits(b, b, keep_first_last=True),
                                                                 cfg.board), None, cfg, None))
    mine = bitops(entry, BitConfig.from_dict({"layers": state["bits"]}), cfg.board)
    rows.append(_design_row("searched (this package)", mine, (state.get("finn") or {}).get("total"), cfg,
                            [state["accuracy"]["test"]]))
    return {**state, "uniform": rows, "uniform_note": _uniform_note(ref, hw, cfg)}


def _design_cost(state: State, cfg: DeployConfig):
    """The cost model of the FINN designs' rows: the search's, when it was FINN-based (FPGA boards with a FINN
    build), at the deploy's folding target; else none (a deploy of given bits costs nothing more)."""
    name = (state.get("search") or {}).get("cost")
    if cfg.board.fpga is None or not (state.get("finn") or {}).get("total") or name not in ("finn", "surrogate"):
        return None
    from bitswarm.hw.cost import get_cost_model

    return get_cost_model(name, target_fps=cfg.fps(), cache_dir=cfg.env.cache_dir)


def _try_cost(hw, entry, bits, cfg: DeployConfig):
    """``(cost, None)``, or ``(None, why)`` when FINN (or the surrogate) cannot cost that design: a reference
    row that cannot be costed is reported, it does not fail the deploy."""
    from bitswarm.errors import BitswarmError

    if hw is None:
        return None, None
    try:
        return hw(entry, bits, cfg.board), None
    except BitswarmError as e:
        return None, f"not costed: {str(e).splitlines()[0][:160]}"


def _fits(total: dict, cfg: DeployConfig) -> bool:
    return all(total.get(q, 0) <= cfg.board.fpga.limit(q) for q in ("lut", "bram18", "dsp"))


def _design_row(label: str, bitops, hw: dict | None, cfg: DeployConfig, accs) -> dict:
    """One row: bit metrics, FINN's figures (``hw``: an estimate's values) and the test accuracies over seeds."""
    import statistics

    row = {"design": label, "bops": bitops["bops"], "weight_bits": bitops["weight_bits"]}
    if hw:
        row.update({k: hw.get(k) for k in ("lut", "bram18", "dsp", "throughput_fps")})
        row["fits FINN limits"] = _fits(hw, cfg)
    if accs:
        row["test acc"] = statistics.fmean(accs)
        row["test acc sd"] = statistics.stdev(accs) if len(accs) > 1 else None
        row["seeds"] = len(accs)
    return row


def _uniform_note(ref: dict, hw, cfg: DeployConfig) -> str:
    cost = f"FINN cost: {hw.name} at {cfg.fps():,} FPS" if hw is not None else "no FINN cost (no FPGA build)"
    acc = ("accuracy of the FINN-style designs: the project's runs with the same QAT recipe and float start "
           "(mean over seeds)" if ref else "no shipped accuracy for the FINN-style designs with this recipe")
    return f"{cost}; {acc}."


def step_board(state: State, cfg: DeployConfig) -> State:
    if not cfg.board.ssh.host or not cfg.board_step:
        return {**state, "board_measurement": None}
    from bitswarm.flows.ssh import run_on_board

    return {**state, "board_measurement": run_on_board(cfg.board, _pkg(state), state)}


def step_report(state: State, cfg: DeployConfig) -> State:
    from bitswarm.flows.report import render

    b = cfg.board
    summary = {
        "model": state.get("model_name", cfg.model), "dataset_note": state.get("dataset_note"),
        "board": {"name": b.name, "capacity": b.fpga.resources if b.fpga else {},
                  "limits": b.fpga.finn_limits if b.fpga else {}, "part": b.fpga.part if b.fpga else None},
        "bits": state.get("bits"), "accuracy": state.get("accuracy", {}), "search": state.get("search"),
        "finn": state.get("finn"), "tvm": state.get("tvm"), "uniform": state.get("uniform"),
        "uniform_note": state.get("uniform_note"),
        "board_measurement": state.get("board_measurement"),
        "provenance": {"command": cfg.command, "seed": cfg.seed, "run_id": cfg.run_id, "versions": versions(),
                       "export_max_abs_diff": state.get("export_max_abs_diff")},
    }
    (_pkg(state) / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    render(summary, _pkg(state))
    return state


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("bitswarm", "torch", "brevitas", "qonnx", "finn-plus", "apache-tvm", "onnx"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def step_manifest(state: State, cfg: DeployConfig) -> State:
    import hashlib

    pkg = _pkg(state)
    files = {}
    for p in sorted(pkg.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            files[str(p.relative_to(pkg))] = hashlib.sha256(p.read_bytes()).hexdigest()
    manifest = {"command": cfg.command, "seed": cfg.seed, "board": cfg.board.name, "model": cfg.model,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions(),
                "sha256": files}
    (pkg / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return state


STEPS = [Step("bits", step_bits), Step("train", step_train), Step("export", step_export), Step("finn", step_finn),
         Step("tvm", step_tvm), Step("uniform", step_uniform), Step("board", step_board),
         Step("report", step_report), Step("manifest", step_manifest)]


def config_digest(cfg: DeployConfig) -> str:
    """What a deploy's result depends on (not its run id, command line or output root), the content of its input
    files included: a stopped deploy whose weights, bits config, QONNX, dataset or model file was edited in place
    is not resumed over the new content."""
    from dataclasses import replace

    from bitswarm.cachekey import digest, path_digest

    files = [cfg.weights, cfg.bits_file, cfg.qonnx, cfg.dataset, cfg.model.rsplit(":", 1)[0] if ":" in cfg.model
             else None]
    contents = [path_digest(Path(f)) for f in files if f and Path(f).exists()]
    return digest(repr(replace(cfg, run_id="", command="", out_root=Path("."))), contents)


def _partial_dir(cfg: DeployConfig, board_dir: Path, key: str) -> Path:
    """The unfinished package to resume (same settings), else a new one for ``cfg.run_id``."""
    from bitswarm.errors import ConfigError

    own = board_dir / f".partial-{cfg.run_id}"
    candidates = [own] + sorted(p for p in board_dir.glob(".partial-*") if p != own)
    for p in candidates:
        tag = p / "flow" / "config_digest"
        if tag.is_file() and tag.read_text() == key:
            return p
    if own.exists():
        raise ConfigError(str(own), "run-id", "an unfinished deploy with this run id has other settings",
                          f"the same command to resume it, delete {own}, or a new --run-id")
    try:
        (own / "flow").mkdir(parents=True, exist_ok=True)  # a concurrent deploy of the same run meets the lock
    except OSError as e:
        raise ConfigError(str(board_dir), "--out", f"cannot create the package directory ({e.strerror})",
                          "a writable directory with free space") from e
    (own / "flow" / "config_digest").write_text(key)
    return own


def _step_index(name: str) -> int:
    return [s.name for s in STEPS].index(name)


def _runs(stop_after: str | None, step: str) -> bool:
    return stop_after is None or _step_index(stop_after) >= _step_index(step)


def _drop_if_empty(partial: Path) -> bool:
    """Remove an unfinished package in which nothing was done yet (e.g. a bad input); True if removed."""
    if _resume_point(partial) is None and not (partial / "search" / "journal.sqlite").exists():
        shutil.rmtree(partial, ignore_errors=True)
        return True
    return False


def _resume_point(partial: Path) -> str | None:
    """The first step of STEPS that has not finished in ``partial`` (None: start from the beginning)."""
    log_file = partial / "flow" / "flow_log.json"
    done = {e["step"] for e in json.loads(log_file.read_text()) if e["status"] == "ok"} if log_file.exists() else set()
    todo = [s.name for s in STEPS if s.name not in done]
    return todo[0] if done and todo else None


def deploy(cfg: DeployConfig, *, on_step=None, start_at: str | None = None, stop_after: str | None = None) -> Path:
    """Run the flow; returns the finished package directory (``.partial-<id>`` with ``stop_after``).

    The package is assembled in ``.partial-<id>/`` and renamed only when every step succeeded. A failed
    or interrupted deploy (even ``kill -9``) keeps it, with its flow state and search journal:
    re-running the same command resumes at the first unfinished step (``start_at`` overrides that).
    """

    board_dir = cfg.out_root / cfg.board.name
    if cfg.qonnx:  # a bad file is refused before any directory exists
        from bitswarm.flows.qonnx_in import validate_qonnx

        validate_qonnx(cfg.qonnx, for_finn=cfg.board.fpga is not None)
    if cfg.board.ssh.host and cfg.board_step and _runs(stop_after, "board"):  # before hours of work, not after
        from bitswarm.flows.ssh import check_reachable

        check_reachable(cfg.board)
    key = config_digest(cfg)
    partial = _partial_dir(cfg, board_dir, key)
    lock = hold_lock(partial / "flow" / ".lock", "run-id", f"another deploy of this run is running in {partial}",
                     "wait for it to finish, or use another --run-id")
    try:
        return _deploy_locked(cfg, partial, board_dir, on_step, start_at, stop_after)
    finally:
        lock.close()


def _deploy_locked(cfg: DeployConfig, partial: Path, board_dir: Path, on_step, start_at: str | None,
                   stop_after: str | None) -> Path:
    from bitswarm.errors import ConfigError

    final = board_dir / partial.name.removeprefix(".partial-")
    if final.exists():
        raise ConfigError(str(final), "run-id", "a package with this run id exists", "a new --run-id")
    first = start_at or _resume_point(partial)
    resumable = first is not None and (partial / "flow" / "flow_state.json").exists()
    if start_at and not resumable and start_at != STEPS[0].name:  # a later step needs the earlier steps' state
        _drop_if_empty(partial)
        earlier = [s.name for s in STEPS[:_step_index(start_at)]]
        raise ConfigError("--start-at", "start-at", f"step '{start_at}' needs the state of {', '.join(earlier)}, "
                          f"which have not run for run id '{cfg.run_id}' with these settings",
                          "omit --start-at for a new run, or resume an unfinished run with its own command and "
                          "--run-id")
    state = None if resumable else {"package_dir": str(partial)}
    try:
        run_flow(STEPS, cfg, partial / "flow", state, start_at=first, stop_after=stop_after, on_step=on_step)
    except BaseException as e:
        if not _drop_if_empty(partial) and isinstance(e, StepError):
            e.args = (f"{e.args[0]} (unfinished package kept in {partial}: the same command resumes it)",)
        raise
    if stop_after is not None and stop_after != STEPS[-1].name:
        return partial
    (partial / "flow" / ".lock").unlink(missing_ok=True)  # the finished package carries no lock file
    partial.rename(final)
    return final
