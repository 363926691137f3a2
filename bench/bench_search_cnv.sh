#!/usr/bin/env bash
# Issue 16, CNV part: bitswarm's variant vs BBPSO-Quantizer, plain BBPSO, the GA and random search on CNV /
# CIFAR-10 (the shared JPEG re-encoding) under the PYNQ-Z2's FINN limits (70 % of its LUTs = 37,240, 80 % of
# its BRAM18 = 224) with the shipped FINN surrogate at FINN's cnv-w1a1 throughput (3,000 FPS), from the
# shipped float checkpoint: what `make deploy BOARD=pynq-z2 MODEL=cnv` searches, at equal budgets of
# trained evaluations (cost-only candidates are free).
#
# Cost (session 12, 1 thread): one trained evaluation at the deploy's fitness (1 epoch, 5,000 images) and
# each run's final fine-tune (1 epoch on every training image) dominate: see BENCHMARKS.md, issue 16, CNV.
# Resumable at every level: a finished run is reused, an interrupted run resumes from its journal, and all
# runs share OUT/fitness.sqlite. Two processes, 1 torch thread each; SEEDS=... for fewer seeds.
set -euo pipefail
OUT=${OUT:-runs/bench-variant-cnv}
COMMON=(--model cnv --board pynq-z2 --seeds "${SEEDS:-10}" --cost surrogate --target-fps 3000
        --max-lut 37240 --max-bram18 224 --budget "${BUDGET:-24}" --particles 6 --gamma 3 --eval-epochs 1
        --eval-train-samples 5000 --val-samples 1000 --final-epochs 1 --threads 1 --workers 1 --out "$OUT")
mkdir -p "$OUT"
.venv/bin/bitswarm compare "${COMMON[@]}" --algos bitswarm,bbpso-q,bbpso > "$OUT/a.log" 2>&1 &
.venv/bin/bitswarm compare "${COMMON[@]}" --algos ga,random > "$OUT/b.log" 2>&1 &
wait
.venv/bin/bitswarm compare "${COMMON[@]}" --algos bitswarm,bbpso-q,bbpso,ga,random   # every run finished: the table
