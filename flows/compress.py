"""The compression stages as named flow steps (``flows/steps.py``): start -> prune -> search ->
cluster -> finetune -> export, each reading the previous stage's output directory and writing its
own (``search`` is the per-layer bit-width search on the model as the previous stage left it,
pruned shapes included; its winner directory is the next stage's input).

A stage left out of ``CompressConfig`` (``None``) passes the model through unchanged, so the
same list of steps serves any combination; ``start_at`` / ``stop_after`` work as in every flow.
The exported ``model.onnx`` deploys like any QONNX file (``bitswarm deploy --qonnx``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bitswarm.flows.steps import State, Step, run_flow


@dataclass(frozen=True)
class CompressConfig:
    model: str = "tfc"
    bits: str = "w4a8"
    source: str = "ptq"  # float, ptq, qat or an output directory
    data_dir: str | None = None
    seed: int = 0
    candidates: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 32)
    # each stage's options; what is left out takes the stage's defaults (search/compress/stages.py), as its command does
    prune: dict | None = None  # {"k": 40, "dvar": 500, "ft_epochs": 1, ...}: stages.PRUNE_DEFAULTS
    search: dict | None = None  # {"algo": "bbpso-q", "max_avg_bits": 4, "particles": 6, "iters": 4, ...}
    cluster: dict | None = None  # {"sparsity": 0.3, "init": "pso", "step": "max"}: stages.CLUSTER_DEFAULTS
    finetune: dict | None = None  # {"method": "evo" | "eda-cc", "generations": 40, ...}: stages.FINETUNE_DEFAULTS
    env: object = field(default=None)


def _load(state: State):
    from bitswarm.search.compress import artifacts

    return artifacts.load_result(state["dir"])


def _save(state: State, name: str, model, bits, arch, meta) -> State:
    from bitswarm.search.compress import artifacts

    out = Path(state["root"]) / name
    artifacts.save_result(out, model, bits, arch, meta)
    return {**state, "dir": str(out), "stages": [*state.get("stages", []), name]}


def step_start(state: State, cfg: CompressConfig) -> State:
    from bitswarm.search.compress import stages

    s = stages.starting_point(cfg.model, cfg.bits, cfg.source, cfg.data_dir, cfg.seed, cfg.candidates, cfg.env,
                              progress=False)
    return _save(state, "start", s.model, s.bits, s.arch, {"method": "start", "start": s.description})


def _data(cfg: CompressConfig, arch: dict):
    from bitswarm.search.compress import nets
    from bitswarm.workflow import get_data

    return get_data(nets.entry(arch["model"]).dataset, cfg.data_dir, cfg.env)


def step_prune(state: State, cfg: CompressConfig) -> State:
    if cfg.prune is None:
        return state
    from bitswarm.search.compress.stages import prune_stage
    from bitswarm.train import evaluate

    r = _load(state)
    data = _data(cfg, r.arch)
    pruned = prune_stage(r.model, r.arch["model"], data, cfg.prune, cfg.seed)
    res = pruned.result
    meta = {"method": "prune-ocnna", "rpr": res.rpr, "val_pruned": pruned.val_pruned,
            "val_after": evaluate(r.model, data.val), **pruned.options}
    return {**_save(state, "prune", r.model, r.bits, {**r.arch, "keep": res.keep}, meta), "rpr": res.rpr}


def step_search(state: State, cfg: CompressConfig) -> State:
    """BBPSO-Quantizer (or ``algo``) under an average-operation-bits limit, bit-operation cost."""
    if cfg.search is None:
        return state
    from bitswarm.boards import load_board
    from bitswarm.hw.cost import Constraint
    from bitswarm.search.api import search, small_search_spec
    from bitswarm.search.compress import nets
    from bitswarm.train import Recipe

    o, r = cfg.search, _load(state)
    final = o.get("final_epochs", 1)
    spec = small_search_spec(o, (Constraint("avg_bits", o.get("max_avg_bits", 4.0)),), "bitops", cfg.seed,
                             final_recipe=Recipe(epochs=final, lr=1e-3, max_train=o.get("eval_train", 4000))
                             if final else None)
    res = search(nets.arch_entry(r.arch), _data(cfg, r.arch), load_board(o.get("board", "pynq-z2")), r.model, spec,
                 Path(state["root"]) / "search-run", cfg.env, progress=False,
                 arch={**r.arch, "start": f"{state['dir']} ({r.meta.get('method', '?')})"})
    return {**state, "dir": res["winner_dir"], "stages": [*state.get("stages", []), "search"],
            "search_avg_bits": res["best"]["cost"]["avg_bits"]}


def step_cluster(state: State, cfg: CompressConfig) -> State:
    if cfg.cluster is None:
        return state
    from bitswarm.search.compress.stages import cluster_stage

    r = _load(state)
    _, opts = cluster_stage(r.model, cfg.cluster, cfg.seed)
    return _save(state, "cluster", r.model, r.bits, r.arch, {"method": "cluster", **opts})


def step_finetune(state: State, cfg: CompressConfig) -> State:
    if cfg.finetune is None:
        return state
    from bitswarm.search.compress.stages import FINETUNE_DEFAULTS, finetune_codes

    f, r = {**FINETUNE_DEFAULTS, **cfg.finetune}, _load(state)
    method = f.get("method", "evo")
    split = getattr(_data(cfg, r.arch), f["fitness_split"])
    res, params = finetune_codes(r.model, split, method, f["fitness_samples"], cfg.seed, f)
    return _save(state, "finetune", r.model, r.bits, r.arch,
                 {**f, "method": f"finetune-{method}", "fitness": [res.start_fitness, res.best_fitness],
                  "params": params})


def step_export(state: State, cfg: CompressConfig) -> State:
    from bitswarm.models.export import export_qonnx
    from bitswarm.search.compress import nets
    from bitswarm.train import evaluate

    r = _load(state)
    dest = Path(state["root"]) / "model.qonnx.onnx"
    res = export_qonnx(r.model, nets.entry(r.arch["model"]).input_shape, dest)
    test = evaluate(r.model, _data(cfg, r.arch).test)
    return {**state, "qonnx": str(res.path), "export_max_abs_diff": res.max_abs_diff, "test": test}


STEPS = [Step("start", step_start), Step("prune", step_prune), Step("search", step_search),
         Step("cluster", step_cluster),
         Step("finetune", step_finetune), Step("export", step_export)]


def run_compress(cfg: CompressConfig, out: str | Path, **kw) -> State:
    out = Path(out)
    return run_flow(STEPS, cfg, out, {"root": str(out)} if not kw.get("start_at") else None, **kw)
