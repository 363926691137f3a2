"""Find what FINN cannot map before any long work starts.

FINN's dataflow compiler maps quantized Conv2d (dense or depthwise) / Linear layers,
BatchNorm (absorbed into thresholds), ReLU-like quantized activations, max/average pooling,
flatten/reshape and residual adds. Anything else (GELU, Sigmoid, Softmax, LayerNorm,
recurrent layers, upsampling, …) or an unquantized (float, 32-bit) layer is reported by name in
one error; TVM, which maps more, still takes such a model.
"""

from __future__ import annotations

from brevitas import nn as qnn
from torch import nn

from bitswarm.errors import BitswarmError

SUPPORTED = (
    nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity,
    qnn.QuantConv2d, qnn.QuantLinear, qnn.QuantReLU, qnn.QuantIdentity, qnn.QuantHardTanh,
)
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
SUPPORTED_NAMES = ("Conv2d (dense/depthwise)", "Linear", "BatchNorm", "ReLU/QuantReLU/QuantIdentity/QuantHardTanh",
                   "MaxPool2d", "AvgPool2d/AdaptiveAvgPool2d", "Flatten", "Dropout", "residual add")


class UnsupportedForFinnError(BitswarmError):
    """The model has layers FINN's flow cannot map."""

    def __init__(self, offending: list[tuple[str, str]]):
        listed = ", ".join(f"{n} ({why})" for n, why in offending)
        super().__init__(f"FINN cannot map {len(offending)} layer(s): {listed}; the FINN flow supports: "
                         f"{', '.join(SUPPORTED_NAMES)} with quantized (<=16-bit) weights and activations. "
                         f"Use the TVM flow (--cost tvm / a CPU board) for this model.")
        self.offending = offending


def _is_brevitas_internal(name: str) -> bool:
    return any(p in name.split(".") for p in ("weight_quant", "act_quant", "input_quant", "bias_quant",
                                              "output_quant", "tensor_quant"))


def finn_offending_layers(model: nn.Module) -> list[tuple[str, str]]:
    """``[(layer name, reason)]`` for every layer FINN cannot map (empty when all is fine)."""
    bad = []
    for name, m in model.named_modules():
        if not name or _is_brevitas_internal(name) or type(m).__module__.startswith("brevitas.") and not isinstance(
                m, SUPPORTED):
            continue
        if isinstance(m, CONTAINERS) or (list(m.children()) and not isinstance(m, SUPPORTED)):
            continue
        if not isinstance(m, SUPPORTED):
            if type(m).__name__ == "TensorNorm":  # Brevitas bnn_pynq's affine output norm: a Mul/Add FINN absorbs
                continue
            bad.append((name, f"{type(m).__name__} is not supported"))
        elif isinstance(m, nn.Conv2d | nn.Linear) and not isinstance(m, qnn.QuantConv2d | qnn.QuantLinear):
            bad.append((name, "float weights (bits 32)"))
        elif isinstance(m, qnn.QuantConv2d | qnn.QuantLinear) and not m.weight_quant.is_quant_enabled:
            bad.append((name, "float weights (bits 32)"))
        elif isinstance(m, nn.Conv2d) and 1 < m.groups < m.in_channels:
            bad.append((name, f"grouped convolution (groups={m.groups})"))
    return bad


def check_finn_support(model: nn.Module) -> None:
    """Raise :class:`UnsupportedForFinnError` naming every layer FINN cannot map."""
    bad = finn_offending_layers(model)
    if bad:
        raise UnsupportedForFinnError(bad)


#: bit-widths a FINN-costed search takes (FINN's regime: binary and ternary to 8-bit layers)
FINN_BITS = tuple(range(1, 9))


def padded_conv_inputs(entry) -> set[str]:
    """Layers whose activation (or, for ``input_quant``, the network input) feeds a zero-padded conv.

    finn-plus inserts an FMPadding layer in front of a padded conv whose datatype must hold 0; a
    bipolar {-1, +1} activation has no 0 (``FMPadding_Batch DataType must support zero``), and with
    binary next weights the padded 0 would mean -1. The consumer of a layer's activation is the next
    weighted layer in the model's layer order (TFC, CNV and the small CNNs are chains).
    """
    model = entry.build(entry.default_bits())
    modules = dict(model.named_modules())
    specs = list(entry.specs)
    out = set()
    for i, s in enumerate(specs):
        if not s.has_act:
            continue
        nxt = next((t for t in specs[i + 1:] if t.has_weight), None)
        m = modules.get(nxt.name) if nxt is not None else None
        if isinstance(m, nn.Conv2d) and any(int(p) > 0 for p in _padding(m)):
            out.add(s.name)
    return out


def _padding(conv: nn.Conv2d) -> tuple[int, ...]:
    p = conv.padding
    return (1,) if isinstance(p, str) and p != "valid" else tuple(p) if not isinstance(p, str) else (0,)


def finn_narrow(entry):
    """The FINN-aware candidates per variable (``Space.from_specs(narrow=...)``): 1..8 bits, except a
    1-bit activation in front of a zero-padded conv (:func:`padded_conv_inputs`) and a 1-bit input
    quantizer; every other 1-bit combination FINN maps as it is (docs/SEARCH.md, "1 bit the FINN way")."""
    # the input quantizer: a bipolar input in front of a wider first layer passes FINN's estimate flow only
    # as a BINARY threshold, which FINN's HLS code generation refuses ("True binary (non-bipolar) inputs
    # not yet supported"); so the input keeps >= 2 bits, as in every finn-examples design
    no_bipolar = padded_conv_inputs(entry) | {"input_quant"}
    if entry.defaults is not None:  # a user's Brevitas model: its quantizer at 1 bit need not be bipolar
        no_bipolar |= {s.name for s in entry.specs if s.has_act}  # (unsigned: "True binary inputs not supported")

    def narrow(layer: str, kind: str, candidates: tuple[int, ...]) -> tuple[int, ...]:
        kept = tuple(b for b in candidates if b in FINN_BITS)
        if kind == "a" and layer in no_bipolar:
            kept = tuple(b for b in kept if b > 1)
        return kept

    return narrow
