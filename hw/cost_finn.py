"""``--cost finn``: finn-plus' resource and cycle estimates through the warm worker (cached),
together with the paper's bit metrics (Eq. 9-11, computed exactly from the configuration), so one
search can bound both, e.g. ``lut <= board limit`` and ``avg_bits <= 3``."""

from __future__ import annotations

from bitswarm.hw.cost import Cost, register_cost, require_cache_dir
from bitswarm.hw.cost_bitops import BitOpsCost, bit_metrics
from bitswarm.hw.finn_estimate import finn_estimate, target_fps_for_latency


@register_cost("finn")
class FinnCost:
    name = "finn"
    provides = ("lut", "bram18", "uram", "dsp", "cycles", "latency_ms", "throughput_fps", *BitOpsCost.provides)

    uses_cache = True

    def __init__(self, target_fps: int | None = None, max_latency_ms: float | None = None, cache_dir=None):
        self.cache_dir = cache_dir
        # folding policy: the cheapest folding that meets a latency limit, else a fixed throughput target
        self.target_fps = target_fps or (target_fps_for_latency(max_latency_ms) if max_latency_ms else 10000)

    def __call__(self, entry, bits, board) -> Cost:
        est = finn_estimate(entry, bits, board, require_cache_dir(self.cache_dir, "--cost finn"), self.target_fps)
        values = {**bit_metrics(entry, bits).values, **est.values}
        return Cost(est.source, values, est.per_layer, est.meta)
