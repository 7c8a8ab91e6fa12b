#!/usr/bin/env bash
# 12-trial Optuna TPE study with ASHA on Toys/SASRec over alpha, beta, K, gamma (search_spaces/tpe_regen.yaml:
# rungs at 10, 20, 40 epochs), then the best-by-validation trial's test against the SASRec backbone
# (paired test over users, `dr4sr report`) and the trial-epochs ASHA saved (printed by the study).
# Budgets: target SASRec <= 50 epochs (patience 10), pre-training 8 epochs, SASRec init <= 100 epochs
# (patience 10); the backbone run uses the same target budget. The SASRec init (on the original rows,
# init.data) is shared by all trials; each (alpha, beta) is its own mining and pre-training. From the K
# sweep's Toys trials (December 2026, 1 thread, two jobs on 2 cores): init ~8 min once, pre-training 3-6 min
# (175-353 s) and a 50-epoch target 6-8 min per trial, so ~2.5 h serially (less where ASHA stops trials);
# on an idle 2-core machine --max-concurrent 2 roughly halves it (estimated, not measured).
# Kill it and rerun with --resume: finished trials are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/bench/tpe-toys}
BUDGET=(--set train.max_epochs=50 --set train.patience=10)
benchmarks/tune_study.sh search_spaces/tpe_regen.yaml "$OUT" "${BUDGET[@]}" --set pretrain.max_epochs=8 \
    --set 'init.sasrec={train: {max_epochs: 100, patience: 10}}' "$@"
export RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1 PYTHONPATH=$PWD/platform
best=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['best']['run_dir'])" "$OUT/best.json")
.venv/bin/python -m dr4sr.cli run --dataset toys --backbone sasrec --variant backbone --store "$OUT/store" \
    "${BUDGET[@]}" --out "$OUT/backbone-seed0"
.venv/bin/python -m dr4sr.cli report --baseline "$OUT/backbone-seed0" --run "tpe-best=$best"
