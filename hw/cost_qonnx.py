"""``--cost qonnx``: QONNX's own inference cost (``qonnx.util.inference_cost``) of the export.

Bit-operations (BOPs: MACs weighted by input-bits x weight-bits), weight memory in bits and MACs
of the configured model, exported through :func:`bitswarm.models.export.export_qonnx`, with a
per-layer breakdown. Independent of the board. About 2-3 s per configuration (the export);
results are memoised per (model, bits) in the process.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bitswarm.boards import Board
from bitswarm.hw.cost import Cost, LayerCost, register_cost
from bitswarm.models import BitConfig, ZooEntry

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


def unit_scale_bipolar(model):
    """``model`` with every ``BipolarQuant`` scale set to 1. QONNX types a BipolarQuant output BIPOLAR only
    at unit scale (FLOAT32 otherwise: it has no scaled-bipolar type, unlike ``Quant``'s SCALEDINT), so its
    inference cost counted a 1-bit weight or activation as 32 bits. The cost counts bits, not values."""
    import numpy as np

    for node in model.get_nodes_by_op_type("BipolarQuant"):
        scale = model.get_initializer(node.input[1])
        if scale is not None:
            model.set_initializer(node.input[1], np.ones_like(scale))
    return model


def qonnx_inference_cost(onnx_path: str | Path) -> dict:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.inference_cost import inference_cost

    model = unit_scale_bipolar(ModelWrapper(str(onnx_path)))
    return inference_cost(model, output_json=None, output_onnx=None, preprocess=True,
                          discount_sparsity=False, cost_breakdown=True)


def _as_cost(raw: dict, entry: ZooEntry) -> Cost:
    total = raw["total_cost"]
    nodes = [(n, c) for n, c in raw.get("node_cost", {}).items() if n.split("_")[0] in WEIGHTED_OPS]
    weighted = [s.name for s in entry.specs if s.has_weight]
    names = weighted if len(weighted) == len(nodes) else [n for n, _ in nodes]
    per_layer = tuple(LayerCost(name, {"bops": c["total_bops"], "weight_bits": c["total_mem_w_bits"],
                                       "macs": c["total_macs"]}) for name, (_, c) in zip(names, nodes, strict=True))
    values = {"bops": total["total_bops"], "weight_bits": total["total_mem_w_bits"], "macs": total["total_macs"]}
    return Cost("qonnx-inference-cost", values, per_layer, {"unsupported": total.get("unsupported", "")})


@register_cost("qonnx")
class QonnxInferenceCost:
    name = "qonnx"
    provides = ("bops", "weight_bits", "macs")

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str], Cost] = {}

    def __call__(self, entry: ZooEntry, bits: BitConfig, board: Board | None = None) -> Cost:
        key = (entry.name, bits.key())
        if key not in self._memo:
            from bitswarm.models.export import export_qonnx

            with tempfile.TemporaryDirectory(prefix="bitswarm-qonnx-") as tmp:
                path = export_qonnx(entry.build(bits), entry.input_shape, Path(tmp) / "model.onnx", verify=False).path
                self._memo[key] = _as_cost(qonnx_inference_cost(path), entry)
        return self._memo[key]
