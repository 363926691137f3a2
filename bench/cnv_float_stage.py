"""Write the shipped CNV float training's current weights as a stage directory for `bitswarm search --from`.

The CNV float run (`bench/train_shipped.py --model cnv`) spans sessions; until it is finished, a search
can start from its latest epoch (`state.pt`) through this stage directory:

    .venv/bin/python bench/cnv_float_stage.py --out runs/cnv-float-stage
    .venv/bin/bitswarm search --from runs/cnv-float-stage --cost finn ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bitswarm.models import get_model
from bitswarm.search.compress.artifacts import save_result
from bitswarm.workflow import PRETRAINED_DIR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    entry = get_model("cnv")
    ckpt = sorted(PRETRAINED_DIR.glob("cnv-fp-*"))[-1]
    final = ckpt / "final.pt"
    state = torch.load(final, weights_only=True) if final.exists() else torch.load(ckpt / "state.pt")["model"]
    bits = entry.uniform_bits(32, 32)
    model = entry.build(bits)
    model.load_state_dict(state)
    epochs = sum(1 for _ in open(ckpt / "epochs.jsonl"))
    save_result(Path(args.out), model.eval(), bits, {"model": "cnv"},
                {"method": "float", "source": str(ckpt), "epochs": epochs})
    print(f"{args.out}: CNV float weights after {epochs} epochs ({ckpt.name})")


if __name__ == "__main__":
    main()
