import pytest
import torch
from brevitas import nn as qnn

from bitswarm.models import ZOO, BitConfig, get_model


@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_model_builds_and_runs(name):
    e = get_model(name)
    net = e.build(e.default_bits()).eval()
    out = net(torch.rand(2, *e.input_shape) * 2 - 1)
    assert out.shape == (2, 10)
    assert sum(s.macs for s in e.specs) > 0


def _mixed(e, bits_cycle=(1, 2, 3, 5, 8)):
    layers = []
    for i, s in enumerate(e.specs):
        b = bits_cycle[i % len(bits_cycle)]
        layers.append((s.name, {"w": b if s.has_weight else None, "a": b if s.has_act else None}))
    return BitConfig.from_dict({"layers": dict(layers)})


@pytest.mark.parametrize("name", ["tfc", "cnv", "resnet20"])
def test_bits_are_real(name):
    """Each quantized layer's weights take <= 2^b levels; its activations likewise."""
    e = get_model(name)
    bits = _mixed(e)
    net = e.build(bits).train()
    x = torch.rand(16, *e.input_shape) * 2 - 1
    net(x)  # let activation scales initialise from statistics
    net.eval()
    acts = {}
    mods = dict(net.named_modules())
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: acts.__setitem__(n, o))
             for n, m in mods.items() if isinstance(m, qnn.QuantReLU | qnn.QuantIdentity)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    checked_w = checked_a = 0
    for name_, b in bits.layers:
        m = mods[name_]
        if b.w is not None and b.w < 32:
            qw = m.quant_weight()
            levels = qw.int().unique().numel()  # integer codes, shared by all channels
            assert levels <= 2 ** b.w, f"{name_}: {levels} weight levels for {b.w} bits"
            per_channel = max(row.unique().numel() for row in qw.value.flatten(1))
            assert per_channel <= 2 ** b.w
            checked_w += 1
    for n, out in acts.items():
        q = getattr(mods[n], "act_quant", None)
        bw = q.bit_width() if q is not None and q.is_quant_enabled else None
        if bw is not None:
            levels = out.unique().numel()
            assert levels <= 2 ** int(bw), f"{n}: {levels} activation levels for {int(bw)} bits"
            checked_a += 1
    assert checked_w >= 3 and checked_a >= 3


def test_float_config_is_unquantized():
    e = get_model("tfc")
    net = e.build(e.uniform_bits(32, 32))
    assert net.fc0.quant_weight().unique().numel() > 256
