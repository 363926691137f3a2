"""``--cost bitops``: the BBPSO-Quantizer paper's bit metrics, from per-layer MACs and params.

* ``avg_bits``: average operation bit-width, Eq. 11: ``sqrt(Σ m_j n_j OP_j / Σ OP_j)`` with m the
  layer's input-activation bits, n its weight bits and OP its MACs (from a forward-pass profile);
* ``weight_avg_bits``: Eq. 10, the parameter-weighted mean weight bit-width;
* ``compression_ratio``: Eq. 9, ``32 / weight_avg_bits``;
* ``bops`` = Σ m_j n_j OP_j and ``weight_bits`` = Σ n_j params_j.

The input activation bits of a layer are the output bits of the nearest quantized activation
before it in model order (the input quantizer for the first layer); 32 where nothing quantizes.
"""

from __future__ import annotations

import math

from bitswarm.hw.cost import Cost, LayerCost, register_cost
from bitswarm.models import BitConfig, ZooEntry


def bit_metrics(entry: ZooEntry, bits: BitConfig) -> Cost:
    act_in, ops, bops, wbits, params = 32, 0.0, 0.0, 0.0, 0.0
    per_layer = []
    for s in entry.specs:
        b = bits[s.name]
        if s.has_weight and s.macs:
            n = b.w
            bops += act_in * n * s.macs
            ops += s.macs
            wbits += n * s.params
            params += s.params
            per_layer.append(LayerCost(s.name, {"bops": act_in * n * s.macs, "weight_bits": n * s.params}))
        if s.has_act and b.a is not None:
            act_in = b.a
    avg = math.sqrt(bops / ops) if ops else 0.0
    wavg = wbits / params if params else 0.0
    values = {"avg_bits": avg, "weight_avg_bits": wavg, "compression_ratio": 32.0 / wavg if wavg else 0.0,
              "bops": bops, "weight_bits": wbits}
    return Cost("bitops", values, tuple(per_layer))


@register_cost("bitops")
class BitOpsCost:
    name = "bitops"
    provides = ("avg_bits", "weight_avg_bits", "compression_ratio", "bops", "weight_bits")

    def __call__(self, entry: ZooEntry, bits: BitConfig, board=None) -> Cost:
        return bit_metrics(entry, bits)
