"""Integer lowering for TVM (hw/tvm_int.py): which nodes become integer ops, the int build against qonnx'
executor and the float QCDQ build, and the refusal of a reference that is constant over the inputs."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

pytest.importorskip("tvm")

from bitswarm.boards import load_board  # noqa: E402
from bitswarm.hw.tvm_build import DegenerateReferenceError, compile_tvm, run_library  # noqa: E402
from bitswarm.hw.tvm_int import integer_ops  # noqa: E402
from bitswarm.hw.tvm_lower import to_qcdq  # noqa: E402
from bitswarm.models import get_model  # noqa: E402
from bitswarm.models.export import export_qonnx  # noqa: E402

pytestmark = pytest.mark.tvm


def _calibrated(model: nn.Module, shape, seed: int = 0) -> nn.Module:
    """BatchNorm statistics from random inputs in [-1, 1] (quantizers untouched): with random weights the
    pre-activations are small and the ReLU quantizers (scale ~10/levels) round them all to 0 (a dead model)."""
    g = torch.Generator().manual_seed(seed)
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
            m.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand((32, *shape), generator=g) * 2 - 1)
    return model.eval()


def _export(tmp_path, name, w, a, keep_first_last=True, seed=0):
    entry = get_model(name)
    torch.manual_seed(seed)
    model = _calibrated(entry.build(entry.uniform_bits(w, a, keep_first_last=keep_first_last)), entry.input_shape)
    return export_qonnx(model, entry.input_shape, tmp_path / f"{name}.qonnx.onnx").path, model


@pytest.fixture(scope="module")
def smallcnn(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("int"), "smallcnn", 4, 4)


def test_every_quantized_conv_and_linear_becomes_an_integer_op(smallcnn, tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    q = ModelWrapper(str(smallcnn[0]))
    layers = [n for n in q.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    m = ModelWrapper(str(to_qcdq(smallcnn[0], tmp_path / "m.int.onnx", "int")))
    ints = integer_ops(m)
    assert len(layers) == 4 and len(ints) == len(layers)  # 3 padded convs (after max-pools) and the classifier
    assert sorted(n.op_type for n in ints) == ["Conv", "Conv", "Conv", "MatMulInteger"]
    assert [n for n in m.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n not in ints] == []
    assert not any(n.op_type == "DequantizeLinear" for n in m.graph.node)  # every activation runs on its codes
    int32 = {v.name for v in m.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.INT32}
    codes = [m.get_initializer(n.input[1] if n.op_type == "MatMulInteger" else m.find_producer(n.input[1]).input[0])
             for n in ints]
    assert all(c.dtype == np.int8 for c in codes) and all(n.output[0] in int32 for n in ints)  # int8 in, int32 out
    assert sorted(int(np.abs(c).max()) for c in codes) == [7, 7, 127, 127]  # 8-bit first/last, 4-bit narrow inside


def test_int_build_matches_qonnx_executor_and_the_float_build(smallcnn, tmp_path):
    path, model = smallcnn
    board = load_board("host")
    fl = compile_tvm(path, board, tmp_path / "qcdq")
    it = compile_tvm(path, board, tmp_path / "int", lowering="int")
    assert it.verified_against == "qonnx-executor" and it.verified_max_abs_diff < 1e-4
    assert fl.verified_max_abs_diff < 1e-4
    rng = np.random.default_rng(123)
    xs = [rng.uniform(-1, 1, it.input_shape).astype(np.float32) for _ in range(6)]
    y_int = np.stack([run_library(it.lib_path, x) for x in xs])
    y_float = np.stack([run_library(fl.lib_path, x) for x in xs])
    with torch.no_grad():
        y_torch = np.stack([model(torch.from_numpy(x)).numpy() for x in xs])
    assert np.ptp(y_torch, axis=0).max() > 0.1  # a live reference: outputs differ between inputs
    assert np.abs(y_int - y_float).max() < 1e-4 and np.abs(y_int - y_torch).max() < 1e-3


def test_int_build_of_tfc_at_two_bits_verifies_against_pytorch(tmp_path):
    path, model = _export(tmp_path, "tfc", 2, 2)
    r = compile_tvm(path, load_board("host"), tmp_path / "out", torch_model=model, lowering="int")
    assert r.verified_against == "pytorch" and r.verified_max_abs_diff < 1e-3
    from qonnx.core.modelwrapper import ModelWrapper

    assert len(integer_ops(ModelWrapper(str(r.onnx_path)))) == 4


def test_a_constant_reference_is_refused(tmp_path):
    """All weights 0: the output is the last BatchNorm's shift whatever the input; the check would prove nothing."""
    entry = get_model("tfc")
    model = entry.build(entry.uniform_bits(4, 4, keep_first_last=True)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                p.zero_()
    path = export_qonnx(model, entry.input_shape, tmp_path / "dead.qonnx.onnx", verify=False).path
    for lowering in ("qcdq", "int"):
        with pytest.raises(DegenerateReferenceError, match="same for all 4 random inputs.*use trained weights or "
                                                           "other inputs"):
            compile_tvm(path, load_board("host"), tmp_path / lowering, lowering=lowering)
        assert not (tmp_path / lowering / "model.so").exists()
