"""What a compression command writes and reads: an output directory any later stage can load.

``<out>/model.pt``   state dict of the Brevitas model
``<out>/bits.yaml``  its bit config (``BitConfig``)
``<out>/arch.json``  model name and, after pruning, the kept filter indices per conv layer
``<out>/meta.json``  method, parameters and measured figures
``<out>/model.onnx`` QONNX export (when asked for), verified like any other export

:func:`load_result` rebuilds the model (zoo entry -> surgery from ``arch.json`` -> weights), so
the stages compose: ``prune`` -> ``cluster`` / ``finetune`` -> export / deploy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bitswarm.atomic import save_torch, write_json
from bitswarm.errors import ConfigError
from bitswarm.models import BitConfig


@dataclass(frozen=True)
class Loaded:
    model: nn.Module
    bits: BitConfig
    arch: dict
    meta: dict


def _write_json(path: Path, data: dict) -> None:
    write_json(path, data, indent=2, sort_keys=True)


def save_result(out: str | Path, model: nn.Module, bits: BitConfig, arch: dict, meta: dict,
                input_shape: tuple[int, ...] | None = None) -> Path:
    """Write the directory; with ``input_shape`` also a verified QONNX export."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from bitswarm.search.compress.qgrid import init_weight_scales

    init_weight_scales(model)
    save_torch(model.state_dict(), out / "model.pt")
    bits.save(out / "bits.yaml")
    _write_json(out / "arch.json", arch)
    if input_shape is not None:
        from bitswarm.models.export import export_qonnx

        meta = {**meta, "qonnx": str(export_qonnx(model, input_shape, out / "model.onnx").path)}
    _write_json(out / "meta.json", meta)
    return out


def load_result(out: str | Path) -> Loaded:
    out = Path(out)
    for f in ("model.pt", "bits.yaml", "arch.json"):
        if not (out / f).exists():
            raise ConfigError(str(out), f, "missing", "a directory written by bitswarm prune/cluster/finetune")
    bits = BitConfig.load(out / "bits.yaml")
    arch = json.loads((out / "arch.json").read_text())
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    from bitswarm.search.compress.nets import arch_entry

    model = arch_entry(arch).build(bits)
    missing, unexpected = model.load_state_dict(torch.load(out / "model.pt", weights_only=True), strict=False)
    # activation scales Brevitas never initialised (a model that never ran in training mode) are absent
    missing = [k for k in missing if "act_quant" not in k]
    if missing or unexpected:
        raise ConfigError(str(out / "model.pt"), "state", f"does not fit arch.json: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}", "a model.pt written with this arch.json")
    return Loaded(model.eval(), bits, arch, meta)
