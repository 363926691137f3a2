"""Sweep 1-bit (bipolar) activations / weights through finn-plus 1.6.1's estimate flow.

Run (serially, one FINN process):
    OMP_NUM_THREADS=1 nice -n 10 /work/main/.venv/bin/python bench/finn1bit/sweep.py [--only GROUP] [--bn random]
          [--patch extract_bipolar]
Results are appended to bench/finn1bit/results.json (one record per case, keyed by case id + variant).

Groups:
  tfc-i0 / tfc-i1 / tfc-i2: TFC hidden layer i, varying w_i in {1,2,4}, a_i in {1,2}, the next layer's
      w in {1,2,4} (for i=2 the output layer fc3: {1,2,4,8}) and the previous activation (input quantizer
      for i=0) in {1,2,8}; everything else 4-bit weights / 2-bit activations, input 8, fc3 w8.
  tfc-edge: all-1-bit, input at 1 bit, ...
  cnv, smallcnn: 1-bit activations in front of MaxPool / conv / fc / output layers, all-1-bit.
--bn random: before export, give every BatchNorm random affine/statistics with ~1/3 negative gammas
      (finn_estimate uses a fresh seed-0 model whose BNs are identities; trained nets are not).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RESULTS = HERE / "results.json"
WORK = Path("/tmp/finn1bit/work")


def tfc(inp, l0, l1, l2, w3):
    return {"input_quant": {"a": inp}, "fc0": {"w": l0[0], "a": l0[1]}, "fc1": {"w": l1[0], "a": l1[1]},
            "fc2": {"w": l2[0], "a": l2[1]}, "fc3": {"w": w3}}


def cnv(inp=8, conv=None, fc=None, w_last=8):
    conv = conv or [(8, 4)] + [(4, 4)] * 5
    fc = fc or [(4, 4), (4, 4)]
    d = {"input_quant": {"a": inp}}
    d.update({f"conv{i}": {"w": w, "a": a} for i, (w, a) in enumerate(conv)})
    d.update({f"fc{i}": {"w": w, "a": a} for i, (w, a) in enumerate(fc)})
    d["fc2"] = {"w": w_last}
    return d


def smallcnn(inp=8, conv=None, w_last=8):
    conv = conv or [(8, 4), (4, 4), (4, 4)]
    d = {"input_quant": {"a": inp}}
    d.update({f"conv{i}": {"w": w, "a": a} for i, (w, a) in enumerate(conv)})
    d["fc0"] = {"w": w_last}
    return d


def cases() -> list[dict]:
    out = []
    W, A, P = (1, 2, 4), (1, 2), (1, 2, 8)
    # --- TFC, layer 0 (previous = input quantizer)
    for p, w, a, wn in itertools.product(P, W, A, W):
        out.append(dict(group="tfc-i0", model="tfc", layers=tfc(p, (w, a), (wn, 2), (4, 2), 8),
                        vary=dict(prev_a=p, w_i=w, a_i=a, w_next=wn)))
    # --- TFC, layer 1 (previous = fc0's activation, fc0 w4)
    for p, w, a, wn in itertools.product(P, W, A, W):
        out.append(dict(group="tfc-i1", model="tfc", layers=tfc(8, (4, p), (w, a), (wn, 2), 8),
                        vary=dict(prev_a=p, w_i=w, a_i=a, w_next=wn)))
    # --- TFC, layer 2 (next = output layer fc3, no activation)
    for p, w, a, wn in itertools.product(P, W, A, (1, 2, 4, 8)):
        out.append(dict(group="tfc-i2", model="tfc", layers=tfc(8, (4, 2), (4, p), (w, a), wn),
                        vary=dict(prev_a=p, w_i=w, a_i=a, w_next=wn)))
    # --- TFC edges
    e = [("all w1a1, input 8, fc3 w8", tfc(8, (1, 1), (1, 1), (1, 1), 8)),
         ("all w1a1, input 8, fc3 w1", tfc(8, (1, 1), (1, 1), (1, 1), 1)),
         ("all w1a1, input 1, fc3 w1", tfc(1, (1, 1), (1, 1), (1, 1), 1)),
         ("all w1a1, input 2, fc3 w8", tfc(2, (1, 1), (1, 1), (1, 1), 8)),
         ("input a1 only (rest default)", tfc(1, (8, 4), (4, 4), (4, 4), 8)),
         ("input a1, fc0 w1", tfc(1, (1, 4), (4, 4), (4, 4), 8)),
         ("input a1, fc0 w1 a1", tfc(1, (1, 1), (4, 4), (4, 4), 8)),
         ("project config w4a1/w2a1/w1a2", tfc(8, (4, 1), (2, 1), (1, 2), 8)),
         ("default 4/4, input 2, edges 8", tfc(2, (8, 4), (4, 4), (4, 4), 8))]
    out += [dict(group="tfc-edge", model="tfc", layers=cfg_layers, vary=dict(desc=d)) for d, cfg_layers in e]
    # --- CNV: conv0 (no pool), conv1 / conv3 (MaxPool after the activation), conv5 (-> flatten -> fc0),
    #     fc1 (-> output layer fc2)
    base = [(8, 4)] + [(4, 4)] * 5
    for i in (0, 1, 3, 5):
        for w, wn in itertools.product((1, 4), (1, 4)):
            conv = list(base)
            conv[i] = (w if i else 8 if w == 4 else 1, 1)
            fc = [(4, 4), (4, 4)]
            if i < 5:
                conv[i + 1] = (wn, 4)
            else:
                fc[0] = (wn, 4)
            out.append(dict(group="cnv", model="cnv", layers=cnv(conv=conv, fc=fc),
                            vary=dict(layer=f"conv{i}", pool_after=i in (1, 3), w_i=conv[i][0], a_i=1, w_next=wn)))
    for wn in (1, 4, 8):
        out.append(dict(group="cnv", model="cnv", layers=cnv(fc=[(4, 4), (4, 1)], w_last=wn),
                        vary=dict(layer="fc1", w_i=4, a_i=1, w_next=wn)))
    out += [dict(group="cnv", model="cnv", layers=cnv(), vary=dict(desc="default 4/4, edges 8")),
            dict(group="cnv", model="cnv", layers=cnv(conv=[(8, 1)] + [(1, 1)] * 5, fc=[(1, 1), (1, 1)]),
                 vary=dict(desc="all w1a1, input 8, conv0 w8, fc2 w8")),
            dict(group="cnv", model="cnv", layers=cnv(conv=[(1, 1)] * 6, fc=[(1, 1), (1, 1)], w_last=1),
                 vary=dict(desc="all w1a1, input 8, conv0 w1, fc2 w1")),
            dict(group="cnv", model="cnv", layers=cnv(inp=1), vary=dict(desc="input a1 (rest default)")),
            dict(group="cnv", model="cnv", layers=cnv(conv=[(8, 2)] + [(4, 1)] * 5, fc=[(4, 1), (4, 1)]),
                 vary=dict(desc="w4a1 everywhere inside, conv0 w8a2"))]
    # --- smallcnn: every conv is followed by MaxPool; conv2 -> pool -> flatten -> fc0 (output)
    for i, w, wn in ((0, 8, 1), (0, 8, 4), (1, 4, 4), (1, 1, 1), (1, 1, 4), (1, 4, 1), (0, 8, 2), (1, 2, 2)):
        conv = [(8, 4), (4, 4), (4, 4)]
        conv[i] = (w, 1)
        conv[i + 1] = (wn, 4)
        out.append(dict(group="smallcnn", model="smallcnn", layers=smallcnn(conv=conv),
                        vary=dict(layer=f"conv{i}", pool_after=True, w_i=w, a_i=1, w_next=wn)))
    for w, wn in ((4, 8), (4, 4), (4, 1), (1, 1)):
        out.append(dict(group="smallcnn", model="smallcnn", layers=smallcnn(conv=[(8, 4), (4, 4), (w, 1)], w_last=wn),
                        vary=dict(layer="conv2", pool_after=True, w_i=w, a_i=1, w_next=wn)))
    out += [dict(group="smallcnn", model="smallcnn", layers=smallcnn(conv=[(8, 1), (1, 1), (1, 1)]),
                 vary=dict(desc="all w1a1, conv0 w8, fc0 w8")),
            dict(group="smallcnn", model="smallcnn", layers=smallcnn(inp=1), vary=dict(desc="input a1"))]
    seen, uniq = set(), []
    for c in out:
        k = (c["model"], json.dumps(c["layers"], sort_keys=True))
        if k not in seen:
            seen.add(k)
            c["id"] = f"{c['group']}:{len(uniq)}"
            uniq.append(c)
    return uniq


def randomize_bn(model, seed: int = 1):
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                sign = torch.where(torch.rand(n, generator=g) < 0.33, -1.0, 1.0)
                m.weight.copy_(sign * (0.5 + torch.rand(n, generator=g)))
                m.bias.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_mean.copy_(torch.randn(n, generator=g) * 2)
                m.running_var.copy_(0.5 + 2 * torch.rand(n, generator=g))
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="groups or case ids")
    ap.add_argument("--bn", choices=["init", "random"], default="init")
    ap.add_argument("--patch", choices=["none", "extract_bipolar"], default="none",
                    help="extract_bipolar: see patches.py (verifies a FINN-flow fix for a 1-bit input quantizer)")
    ap.add_argument("--fails-of", help="re-run only the cases that failed in this variant (e.g. 'bn=init')")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="also compare the streamlined model (input of step_convert_to_hw) with the QONNX export")
    ap.add_argument("--redo", action="store_true", help="drop earlier records of the selected cases/variant")
    args = ap.parse_args()
    from finnrun import run_case

    variant = f"bn={args.bn},patch={args.patch}" + (",check" if args.check else "")
    todo = cases()
    if args.only:
        todo = [c for c in todo if c["group"] in args.only or c["id"] in args.only]
    prev = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    if args.fails_of:
        failed = {r["id"] for r in prev if r["variant"].startswith(args.fails_of) and r["rc"] != 0}
        todo = [c for c in todo if c["id"] in failed]
    if args.list:
        for c in todo:
            print(c["id"], c["vary"])
        print(len(todo), "cases")
        return
    if args.patch != "none":
        import patches

        patches.apply(args.patch)
    if args.redo:
        ids = {c["id"] for c in todo}
        prev = [r for r in prev if not (r["id"] in ids and r["variant"] == variant)]
    post = randomize_bn if args.bn == "random" else None
    done = {(r["id"], r["variant"]) for r in prev}
    for c in todo:
        if (c["id"], variant) in done:
            continue
        r = run_case(c["model"], c["layers"], WORK, post_build=post, check=args.check)
        rec = {**c, "variant": variant, **r}
        prev.append(rec)
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(prev, indent=1, default=str))
        tmp.replace(RESULTS)
        with open("/tmp/finn1bit/progress.txt", "a") as f:
            f.write(f"{c['id']} {variant} {c['vary']} rc={r['rc']} {r.get('fail', {}).get('msg', '')}\n")


if __name__ == "__main__":
    main()
