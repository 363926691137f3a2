"""Brevitas' own bnn_pynq cnv_1w1a (untrained, BatchNorm statistics randomised for a spread of outputs) to QONNX:
the input of BENCHMARKS.md's `deploy --qonnx` check (issue 17).

    .venv/bin/python bench/bnn_pynq/export_cnv_1w1a.py /tmp/bnn/cnv_1w1a.onnx
"""

import sys

import torch
from brevitas.export import export_qonnx
from brevitas_examples.bnn_pynq.models import model_with_cfg

if __name__ == "__main__":
    torch.manual_seed(0)
    m = model_with_cfg("cnv_1w1a", pretrained=False)[0].eval()
    with torch.no_grad():  # BN statistics that give a spread of outputs (unit statistics: near-constant logits)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.weight.uniform_(0.5, 1.5)
    export_qonnx(m, torch.rand(1, 3, 32, 32) * 2 - 1,
                 sys.argv[1] if len(sys.argv) > 1 else "cnv_1w1a.onnx")
    print("exported")
