"""A user's own QONNX file: ``bitswarm deploy --qonnx FILE`` (``flows/qonnx_in.py``)."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from bitswarm.cli import main
from bitswarm.errors import ConfigError
from bitswarm.flows.qonnx_in import import_qonnx
from bitswarm.models import get_model

REPO = Path(__file__).resolve().parents[1]


def _float_onnx(path: Path) -> Path:
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    torch.onnx.export(net, (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False)
    return path


def _tfc_w2a2(pretrained: bool = False) -> nn.Module:
    from bitswarm.train import load_float_weights

    entry = get_model("tfc")
    torch.manual_seed(0)
    model = entry.build(entry.uniform_bits(2, 2, keep_first_last=True))
    if pretrained:
        ckpt = next((REPO / "models" / "pretrained").glob("tfc-fp-*/final.pt"))
        load_float_weights(model, torch.load(ckpt, weights_only=True))
    return model.eval()


def _brevitas_direct(model: nn.Module, path: Path) -> Path:
    """What a user gets from Brevitas' own exporter: weights in ``<file>.data`` next to it."""
    from brevitas.export import export_qonnx

    path.parent.mkdir(parents=True, exist_ok=True)
    export_qonnx(model, input_t=torch.zeros(1, 1, 28, 28), export_path=str(path))
    return path


def _run_qonnx(path: Path, x: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    m = ModelWrapper(str(path))
    return execute_onnx(m, {m.graph.input[0].name: x})[m.graph.output[0].name]


def test_float_onnx_is_refused_for_finn_naming_the_file(tmp_path):
    src = _float_onnx(tmp_path / "float.onnx")
    with pytest.raises(ConfigError, match=r"float.onnx: field 'graph': has no quantizer node") as e:
        import_qonnx(src, tmp_path / "out.onnx", for_finn=True)
    assert str(src) in str(e.value)
    assert not (tmp_path / "out.onnx").exists() and not list(tmp_path.glob("*.import.onnx"))


def test_a_symbolic_batch_dimension_is_refused_before_the_finn_step(tmp_path):
    src = _brevitas_direct(_tfc_w2a2(), tmp_path / "tfc.onnx")
    model = onnx.load(str(src))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # as an export with dynamic_axes writes
    onnx.save(model, str(tmp_path / "dyn.onnx"))
    with pytest.raises(ConfigError, match=r"dyn.onnx: field 'graph.input': symbolic batch dimension 'N'"):
        import_qonnx(tmp_path / "dyn.onnx", tmp_path / "out.onnx", for_finn=True)
    assert not (tmp_path / "out.onnx").exists()


def test_cli_deploy_of_a_float_onnx_exits_2_and_leaves_no_package(tmp_path, tiny_mnist_dir, monkeypatch, capsys):
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    src = _float_onnx(tmp_path / "float.onnx")
    out = tmp_path / "deploy"
    rc = main(["deploy", "--qonnx", str(src), "--board", "pynq-z2", "--data-dir", str(tiny_mnist_dir),
               "--out", str(out), "--run-id", "r1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "float.onnx: field 'graph': has no quantizer node" in err[0]
    left = list((out / "pynq-z2").iterdir()) if (out / "pynq-z2").exists() else []
    assert left == []  # neither the package nor its .partial-* directory


def test_brevitas_direct_export_imports_into_one_self_contained_file(tmp_path):
    model = _tfc_w2a2()
    src = _brevitas_direct(model, tmp_path / "user" / "tfc.onnx")
    assert Path(f"{src}.data").exists()  # the exporter's side file: the case this import exists for
    dest = tmp_path / "pkg" / "model.qonnx.onnx"
    dest.parent.mkdir()
    assert import_qonnx(src, dest, for_finn=True) == [1, 28, 28]
    shutil.rmtree(tmp_path / "user")  # the copy needs nothing of the user's files
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.qonnx.onnx"]
    m = onnx.load(str(dest), load_external_data=False)
    assert not any(onnx.external_data_helper.uses_external_data(t) for t in m.graph.initializer)
    assert [i.name for i in m.graph.input] == [m.graph.input[0].name]  # initializers are not inputs
    x = torch.rand(4, 1, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ref = np.concatenate([model(xi).numpy() for xi in x])
    got = np.concatenate([_run_qonnx(dest, xi.numpy()) for xi in x])
    assert np.abs(got - ref).max() < 1e-4
    assert np.ptp(ref, axis=0).max() > 0  # not a constant output: the comparison means something


@pytest.mark.slow
@pytest.mark.finn
@pytest.mark.tvm
@pytest.mark.parametrize("board", ["host", "pynq-z2"])
def test_deploy_of_a_brevitas_direct_qonnx(tmp_path, fresh_cache, tiny_mnist_dir, monkeypatch, capsys, board):
    """Trained float TFC weights in a w2a2 TFC (outputs not degenerate), exported by Brevitas itself."""
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(fresh_cache))
    src = _brevitas_direct(_tfc_w2a2(pretrained=True), tmp_path / "user" / "tfc.onnx")
    out = tmp_path / "deploy"
    rc = main(["deploy", "--qonnx", str(src), "--model", "tfc", "--board", board, "--data-dir", str(tiny_mnist_dir),
               "--out", str(out), "--run-id", "r1"])
    assert rc == 0, capsys.readouterr().err
    pkg = out / board / "r1"
    summary = json.loads((pkg / "summary.json").read_text())
    assert summary["model"] == "tfc.onnx" and summary["tvm"]
    host = [t for t in summary["tvm"] if t["target"].startswith("host:")]  # a cross-compiled one is not run here
    assert len(host) == 1 and host[0]["verified_max_abs_diff"] < 1e-3
    if board == "pynq-z2":
        v = summary["finn"]["verification"]
        levels = v["levels"]
        assert len(levels) == 4 and all(lv["ok"] for lv in levels), json.dumps(v)
        assert v["n_inputs"] > 0 and v["reference_spread"] > 0  # trained weights: the outputs vary
        assert summary["finn"]["total"]["lut"] > 0
    else:
        assert summary["finn"] is None
