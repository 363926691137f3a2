"""Issue 7 end to end: user models (a fixture CNN, Brevitas' bnn_pynq TFC) through a small search and
deploy for pynq-z2 and host with the real FINN and TVM; an unmappable model still deploys via TVM."""

import json
from pathlib import Path

import numpy as np
import pytest

from bitswarm.boards import load_board
from bitswarm.env import Environment
from bitswarm.flows.deploy import DeployConfig, deploy

pytestmark = [pytest.mark.finn, pytest.mark.tvm, pytest.mark.slow]
FIX = Path(__file__).parent / "fixtures"
SEARCH = {"particles": 3, "iters": 1, "eval_train": 300}


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "user.npz"
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 600)
    x = rng.integers(0, 60, (600, 32, 32, 3)).astype(np.uint8)
    x[np.arange(600), 3 * y] = 250
    np.savez(p, x=x, y=y)
    return p


def _deploy(tmp_path, cache, board, model, dataset, data_dir=None, search=SEARCH):
    env = Environment(data_dir=Path(data_dir) if data_dir else None, cache_dir=cache, vivado=None,
                      vitis_hls=None, ray_address=None)
    cfg = DeployConfig(board=load_board(board), env=env, model=model, dataset=dataset, search=search, fp_epochs=1,
                       qat_epochs=1, out_root=tmp_path / "deploy", run_id="r", command="test")
    pkg = deploy(cfg)
    return pkg, json.loads((pkg / "summary.json").read_text())


@pytest.mark.parametrize("board", ["pynq-z2", "host"])
def test_user_cnn_search_and_deploy(tmp_path, fresh_cache, npz, board):
    pkg, s = _deploy(tmp_path, fresh_cache, board, f"{FIX}/byom_cnn.py:build", str(npz))
    assert set(s["bits"]) >= {"input_quant", "features.0", "features.2", "classifier"}
    assert s["search"]["evaluations"] and (pkg / "model.qonnx.onnx").exists()
    if board == "pynq-z2":
        assert s["finn"]["total"]["lut"] > 0 and list((pkg / "finn" / "codegen").iterdir())
    else:
        assert s["finn"] is None
    assert any(t["latency_ms"] for t in s["tvm"])


def test_bnn_pynq_tfc_search_and_deploy(tmp_path, fresh_cache, tiny_mnist_dir):
    pkg, s = _deploy(tmp_path, fresh_cache, "pynq-z2", f"{FIX}/bnn_pynq_models.py:tfc_2w2a", "mnist", tiny_mnist_dir)
    assert "features.2" in s["bits"] and s["finn"]["total"]["lut"] > 0


def test_unmappable_model_gets_the_finn_error_and_deploys_through_tvm(tmp_path, fresh_cache, npz):
    pkg, s = _deploy(tmp_path, fresh_cache, "pynq-z2", f"{FIX}/byom_cnn.py:build_with_gelu", str(npz),
                     search={**SEARCH, "cost": "finn"})  # the CLI default: falls back to bit metrics
    assert "FINN cannot map 2 layer(s): features.2 (GELU is not supported)" in s["finn"]["unsupported"]
    assert (pkg / s["tvm"][0]["lib"]).exists() and s["tvm"][1]["latency_ms"] > 0
