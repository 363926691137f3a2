"""Where a compression command starts: a float-trained, PTQ'd, QAT'd or earlier-stage model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from bitswarm.data import Dataset
from bitswarm.errors import ConfigError
from bitswarm.models import BitConfig
from bitswarm.search.compress import artifacts, nets, qgrid

SOURCES = ("float", "ptq", "qat")


@dataclass(frozen=True)
class Start:
    model: nn.Module
    bits: BitConfig
    arch: dict
    data: Dataset
    description: str


def starting_point(model_name: str, bits_spec: str, source: str, data_dir: str | None, seed: int,
                   candidates, env, fp_epochs: int | None = None, qat_epochs: int | None = None,
                   progress: bool = True) -> Start:
    """``source``: ``float`` (train float, bits ignored), ``ptq`` (float -> nearest rounding,
    calibrated activations), ``qat`` (quantization-aware fine-tune) or a directory written by
    another compression command (its model, bits and architecture are reused)."""
    from bitswarm.workflow import FP_RECIPES, QAT_RECIPES, finetune_quantized, get_data, parse_bits, scaled, train_float

    if source not in SOURCES:
        if not Path(source).is_dir():
            raise ConfigError("--from", "from", f"{source!r} is neither a source nor a directory",
                              ", ".join(SOURCES) + ", or an output directory of prune/cluster/finetune")
        loaded = artifacts.load_result(source)
        ent = nets.entry(loaded.arch["model"])
        data = get_data(ent.dataset, data_dir, env)
        return Start(loaded.model, loaded.bits, loaded.arch, data, f"{source} ({loaded.meta.get('method', '?')})")
    ent = nets.entry(model_name)
    data = get_data(ent.dataset, data_dir, env)
    fp = train_float(ent, data, seed, scaled(FP_RECIPES[ent.dataset], fp_epochs), env, progress)
    arch = {"model": ent.name}
    if source == "float":
        return Start(fp.model, fp.bits, arch, data, "float")
    bits = parse_bits(bits_spec, ent, candidates)
    if source == "ptq":
        return Start(qgrid.ptq(ent.build(bits), fp.model.state_dict(), data.train), bits, arch, data,
                     f"PTQ [{bits.short()}]")
    q = finetune_quantized(ent, bits, data, seed, scaled(QAT_RECIPES[ent.dataset], qat_epochs), fp, env, progress)
    return Start(q.model, bits, arch, data, f"QAT [{bits.short()}]")


def start_from_args(args) -> Start:
    """The starting point a compression command's parsed arguments ask for (torch threads set too)."""
    from bitswarm.boards import load_board
    from bitswarm.env import read_environment
    from bitswarm.workflow import set_threads

    set_threads(args.threads)
    board = load_board(args.board)
    return starting_point(args.model, args.bits, args.source, args.data_dir, args.seed, board.bit_candidates + (32,),
                          read_environment(), fp_epochs=args.fp_epochs, qat_epochs=args.qat_epochs)


def write_output(args, model: nn.Module, bits: BitConfig, arch: dict, meta: dict) -> Path:
    """A compression command's output directory (``--out``), with a verified QONNX file if ``--export``."""
    shape = nets.entry(arch["model"]).input_shape if args.export else None
    out = artifacts.save_result(args.out, model, bits, arch, meta, shape)
    print(f"written: {out}")
    return out
