#!/usr/bin/env bash
# Issue 16 benchmark: bitswarm's variant vs BBPSO-Quantizer, plain BBPSO, the GA and random search,
# TFC/MNIST at avg op bits <= 3, 10 seeds, equal budget of 100 *trained* evaluations per run
# (infeasible candidates are costed, not trained, and cost no budget). One process, 1 torch thread.
# Results: runs/bench-variant-avg3/compare.md; summary: bench/summarize_search.py.
set -euo pipefail
SEEDS=${SEEDS:-10}
.venv/bin/bitswarm compare --model tfc --board pynq-z2 --seeds "$SEEDS" --budget 100 --particles 10 --gamma 3 \
  --eval-epochs 1 --eval-train-samples 2000 --val-samples 1000 --final-epochs 1 --threads 1 --workers 1 \
  --max-avg-bits 3 --algos bitswarm,bbpso-q,bbpso,ga,random --out runs/bench-variant-avg3
