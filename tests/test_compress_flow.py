"""The compression stages chained as a flow: start -> cluster -> finetune -> export (verified QONNX)."""

import json

from bitswarm.env import Environment
from bitswarm.flows.compress import CompressConfig, run_compress
from bitswarm.search.compress import artifacts


def test_flow_chains_stages_and_exports(tiny_mnist_dir, tmp_path):
    env = Environment(data_dir=None, cache_dir=tmp_path / "cache", vivado=None, vitis_hls=None, ray_address=None)
    cfg = CompressConfig(model="tfc", bits="w4a8", source="ptq", data_dir=str(tiny_mnist_dir), env=env,
                         cluster={"sparsity": 0.2, "init": "kmeans++"},
                         finetune={"generations": 2, "fitness_samples": 200})
    state = run_compress(cfg, tmp_path / "out", stop_after="finetune")
    assert state["stages"] == ["start", "cluster", "finetune"]
    assert artifacts.load_result(state["dir"]).meta["method"] == "finetune-evo"
    state = run_compress(cfg, tmp_path / "out", start_at="export")  # resumes from the saved state
    assert state["export_max_abs_diff"] <= 1e-4 and (tmp_path / "out" / "model.qonnx.onnx").exists()
    log = json.loads((tmp_path / "out" / "flow_log.json").read_text())
    assert [e["step"] for e in log] == ["start", "prune", "search", "cluster", "finetune", "export"]


def test_flow_prunes_then_searches_bits_on_the_pruned_model(tiny_mnist_dir, tmp_path):
    env = Environment(data_dir=None, cache_dir=tmp_path / "cache", vivado=None, vitis_hls=None, ray_address=None)
    cfg = CompressConfig(model="smallcnn", bits="w4a4", source="ptq", data_dir=str(tiny_mnist_dir), env=env,
                         prune={"k": 50, "dvar": 64, "ft_epochs": 0},
                         search={"max_avg_bits": 3.5, "particles": 2, "iters": 1, "eval_train": 200,
                                 "val_samples": 200, "final_epochs": 0})
    state = run_compress(cfg, tmp_path / "out")
    assert state["stages"] == ["start", "prune", "search"] and state["search_avg_bits"] <= 3.5
    winner = artifacts.load_result(state["dir"])
    assert winner.arch["keep"] == artifacts.load_result(tmp_path / "out" / "prune").arch["keep"]
    assert winner.meta["method"] == "search" and state["export_max_abs_diff"] <= 1e-4


def test_flow_finetunes_with_eda_cc(tiny_mnist_dir, tmp_path):
    env = Environment(data_dir=None, cache_dir=tmp_path / "cache", vivado=None, vitis_hls=None, ray_address=None)
    cfg = CompressConfig(model="tfc", bits="w4a4", source="ptq", data_dir=str(tiny_mnist_dir), env=env,
                         finetune={"method": "eda-cc", "budget": 24, "generations": 2, "pop": 4,
                                   "fitness_samples": 100, "fitness_split": "train"})
    state = run_compress(cfg, tmp_path / "out", stop_after="finetune")
    meta = artifacts.load_result(state["dir"]).meta
    assert meta["method"] == "finetune-eda-cc" and meta["params"]["budget"] == 24
    start, best = meta["fitness"]
    assert best >= start  # the search keeps its best, which starts at the nearest rounding
