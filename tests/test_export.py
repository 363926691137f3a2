import pytest

from bitswarm.models import get_model
from bitswarm.models.export import export_qonnx


@pytest.mark.parametrize("name", ["tfc", "cnv"])
def test_qonnx_export_matches_pytorch(name, tmp_path):
    e = get_model(name)
    net = e.build(e.default_bits())
    r = export_qonnx(net, e.input_shape, tmp_path / f"{name}.onnx")
    assert r.path.exists() and r.max_abs_diff < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.onnx"]  # one self-contained file, no leftovers


def test_one_bit_activations_export_to_the_same_function(tmp_path):
    """QONNX reads a 1-bit quantizer as bipolar: our 1-bit activation must be bipolar too."""
    import torch

    from bitswarm.models import BitConfig

    e = get_model("tfc")
    d = e.uniform_bits(4, 4).to_dict()
    d["layers"]["fc1"]["a"] = 1
    net = e.build(BitConfig.from_dict(d)).train()
    for _ in range(3):  # move BatchNorm statistics away from identity, as training does
        net(torch.rand(64, *e.input_shape) * 2 - 1)
    r = export_qonnx(net.eval(), e.input_shape, tmp_path / "a1.onnx")
    assert r.max_abs_diff < 1e-4
