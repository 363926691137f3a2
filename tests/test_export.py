import pytest

from bitswarm.flows.export import export_qonnx
from bitswarm.models import get_model


@pytest.mark.parametrize("name", ["tfc", "cnv"])
def test_qonnx_export_matches_pytorch(name, tmp_path):
    e = get_model(name)
    net = e.build(e.default_bits())
    r = export_qonnx(net, e.input_shape, tmp_path / f"{name}.onnx")
    assert r.path.exists() and r.max_abs_diff < 1e-4
