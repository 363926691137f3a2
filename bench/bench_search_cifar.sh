#!/usr/bin/env bash
# Issue 3 benchmark, CIFAR-10 part (the shared JPEG re-encoding of CIFAR-10): a ~34k-parameter CNN
# (bench/models/cifar_smallcnn.py, a user model) at avg-bits <= 4, 3 seeds (SEEDS=...), 50 evaluations per run.
# Two processes (two searchers each), 1 torch thread each.
set -euo pipefail
COMMON=(--model bench/models/cifar_smallcnn.py:build --dataset cifar10 --board pynq-z2 --seeds ${SEEDS:-3} --budget 50
        --particles 10 --gamma 3 --eval-epochs 1 --eval-train-samples 2000 --val-samples 1000 --fp-epochs 10
        --final-epochs 1 --threads 1 --workers 1 --max-avg-bits 4 --out runs/bench-search-cifar-avg4)
.venv/bin/bitswarm compare "${COMMON[@]}" --algos bbpso-q,bbpso > runs/bench-search-cifar-a.log 2>&1 &
.venv/bin/bitswarm compare "${COMMON[@]}" --algos ga,random > runs/bench-search-cifar-b.log 2>&1 &
wait
