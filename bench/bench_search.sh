#!/usr/bin/env bash
# Issue 3 benchmark: BBPSO-Quantizer vs plain BBPSO vs pymoo GA vs random search (+ the -IN/-SCP/-LSP
# ablations at avg-bits <= 3), TFC/MNIST, 10 seeds, equal budget of 100 evaluations per run.
# Two processes (one per constraint), 1 torch thread each. Results: runs/bench-search-avg{3,4}/compare.md
set -euo pipefail
COMMON=(--model tfc --board pynq-z2 --seeds 10 --budget 100 --particles 10 --gamma 3 --eval-epochs 1
        --eval-train-samples 2000 --val-samples 1000 --final-epochs 1 --threads 1 --workers 1)
.venv/bin/bitswarm compare "${COMMON[@]}" --max-avg-bits 3 \
  --algos bbpso-q,bbpso,ga,random,bbpso-q-IN,bbpso-q-SCP,bbpso-q-LSP --out runs/bench-search-avg3 \
  > runs/bench-search-avg3.log 2>&1 &
.venv/bin/bitswarm compare "${COMMON[@]}" --max-avg-bits 4 \
  --algos bbpso-q,bbpso,ga,random --out runs/bench-search-avg4 > runs/bench-search-avg4.log 2>&1 &
wait
