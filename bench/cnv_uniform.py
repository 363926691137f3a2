"""Issue 15: FINN's uniform CNV designs (w1a1, w1a2, w2a2, 8-bit input as bnn_pynq) QAT'd from the shipped
float CNV with one recipe and several seeds, resumably, with checkpoints *in the repo*.

Each (design, seed) trains into ``bench/results/cnv-uniform/<design>-s<seed>/`` (``state.pt`` per
epoch while unfinished, ``final.pt`` when done; commit them so the next session continues), and
``<design>-s<seed>/result.json`` gets val/test accuracy (``results.json`` collects them; several
processes may run different seeds at once). ``--finn`` adds, for each design's seed-0 model, FINN's
estimates on pynq-z2 at ``--target-fps`` (re-check of the exported model) and the verification of
that FINN build on 200 validation images.

    BITSWARM_DATA_DIR=../shared/datasets .venv/bin/python bench/cnv_uniform.py --threads 1 \
        [--designs w1a1,w1a2,w2a2,NAME=bits.yaml] [--seeds 0,1,2] [--stop-after-epochs N] [--finn] [--estimates]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from bitswarm.atomic import write_json
from bitswarm.boards import load_board
from bitswarm.env import read_environment
from bitswarm.models import BitConfig, get_model
from bitswarm.train import evaluate, load_float_weights, train
from bitswarm.workflow import PRETRAINED_DIR, float_run_dir, fp_recipe, get_data, qat_recipe, reference_key

OUT = Path(__file__).parent / "results" / "cnv-uniform"
#: the one QAT recipe of every CNV design in the comparison (uniform and searched)
CNV_QAT = qat_recipe("cifar10", "cnv")


def split_design(design: str) -> tuple[str, str]:
    """``wXaY`` (uniform) or ``NAME=BITS.yaml`` (a searched design, QAT'd the same way): (name, spec)."""
    name, _, spec = design.partition("=")
    return name, spec or name


def design_bits(entry, design: str) -> BitConfig:
    """``wXaY``: FINN's uniform design (:meth:`ZooEntry.finn_design_bits`, 8-bit input), or a bits file."""
    name, spec = split_design(design)
    if spec != name or not re.fullmatch(r"w\da\d", name):
        return BitConfig.load(spec)
    return entry.finn_design_bits(int(name[1]), int(name[3]))


def float_state(entry, data) -> dict:
    ckpt = float_run_dir(entry, data, 0, fp_recipe(entry.dataset, entry.name), PRETRAINED_DIR)
    if not (ckpt / "final.pt").exists():
        raise SystemExit(f"the shipped float CNV is unfinished ({ckpt}): run bench/train_shipped.py --model cnv")
    return torch.load(ckpt / "final.pt", weights_only=True)


def qat(entry, data, fp: dict, design: str, seed: int, stop_after: int | None) -> dict | None:
    bits = design_bits(entry, design)
    ckpt = OUT / f"{split_design(design)[0]}-s{seed}"
    torch.manual_seed(seed)
    model = entry.build(bits)
    load_float_weights(model, fp)
    model = train(model, data, CNV_QAT, seed, ckpt, desc=f"cnv {design} s{seed}", stop_after=stop_after)
    if not (ckpt / "final.pt").exists():
        return None
    return {"design": split_design(design)[0], "seed": seed, "bits": bits.short(), "recipe": CNV_QAT.key(),
            "val_acc": evaluate(model, data.val), "test_acc": evaluate(model, data.test), "model": model}


def finn_row(entry, data, row: dict, design: str, target_fps: int, env) -> dict:
    from bitswarm.data import normalize
    from bitswarm.hw.finn_recheck import recheck_with_finn
    from bitswarm.hw.finn_verify import VerifyInputs

    model = row["model"].eval()
    val = data.val.subset(200)
    with torch.no_grad():
        x = normalize(val.x)
        inputs = VerifyInputs(x.numpy(), val.y.numpy(), model(x).argmax(1).numpy())
    bits = design_bits(entry, design)
    return recheck_with_finn(model, bits, entry, load_board("pynq-z2"), (), target_fps, env.cache_dir, inputs)


def estimates(entry, designs: list[str], target_fps: int, env) -> dict:
    """FINN's estimates of each uniform design (bits only, no training): the searches' constraints."""
    from bitswarm.hw.cost import get_cost_model

    cost = get_cost_model("finn", target_fps=target_fps, cache_dir=env.cache_dir)
    path = OUT / f"estimates-{target_fps}fps.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    for design in designs:
        c = cost(entry, design_bits(entry, design), load_board("pynq-z2"))
        design = split_design(design)[0]
        out[design] = {k: c.values[k] for k in ("lut", "bram18", "dsp", "throughput_fps", "avg_bits")}
        write_json(path, out)
        print(design, out[design], flush=True)
    return out


def collect(entry, data) -> dict:
    """``results.json``: every finished run's ``result.json`` (runs may go on in parallel processes), and the
    uniform designs' accuracies per seed shipped for the deploy report (``models/pretrained/cnv-finn-designs.json``)."""
    results = {d.name: json.loads((d / "result.json").read_text()) for d in sorted(OUT.glob("*-s*"))
               if (d / "result.json").exists()}
    write_json(OUT / "results.json", results)
    designs: dict = {}
    for r in results.values():
        if re.fullmatch(r"w\da\d", r["design"]):
            d = designs.setdefault(r["design"], {"bits": r["bits"], "seeds": [], "val_acc": [], "test_acc": []})
            for k, v in (("seeds", r["seed"]), ("val_acc", r["val_acc"]), ("test_acc", r["test_acc"])):
                d[k].append(v)
    key = reference_key(entry, data, CNV_QAT, fp_recipe(entry.dataset, entry.name))
    write_json(PRETRAINED_DIR / "cnv-finn-designs.json",
               {**key, "source": "bench/cnv_uniform.py", "data_note": data.note, "designs": designs})
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--designs", default="w1a1,w1a2,w2a2")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stop-after-epochs", type=int)
    ap.add_argument("--finn", action="store_true")
    ap.add_argument("--target-fps", type=int, default=3000)
    ap.add_argument("--estimates", action="store_true", help="only FINN's estimates of the designs (no training)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = read_environment()
    entry = get_model("cnv")
    if args.estimates:
        estimates(entry, args.designs.split(","), args.target_fps, env)
        return
    data = get_data(entry.dataset, None, env)
    fp = float_state(entry, data)
    for seed in map(int, args.seeds.split(",")):
        for design in args.designs.split(","):
            key = f"{split_design(design)[0]}-s{seed}"
            path = OUT / key / "result.json"
            old = json.loads(path.read_text()) if path.exists() else {}
            if old and (not args.finn or seed != 0 or "finn" in old):
                continue
            row = qat(entry, data, fp, design, seed, args.stop_after_epochs)
            if row is None:
                print(f"{key}: stopped after {args.stop_after_epochs} epochs; re-run to continue", flush=True)
                continue
            if args.finn and seed == 0:
                row["finn"] = finn_row(entry, data, row, design, args.target_fps, env)
            row.pop("model")
            write_json(path, {**old, **row}, default=str)
            print(f"{key}: val {row['val_acc']:.4f} test {row['test_acc']:.4f}", flush=True)
    collect(entry, data)


if __name__ == "__main__":
    main()
