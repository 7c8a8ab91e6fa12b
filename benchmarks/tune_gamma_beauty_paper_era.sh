#!/usr/bin/env bash
# Paper Figure 6 through `dr4sr tune` on the paper-era recipe (search_spaces/gamma_sweep_paper_era.yaml):
# SASRec on Beauty, gamma in {0,.1,.3,.5,1}, seeds 0 1, 10 trials one at a time.
# Budgets: target SASRec <= 60 epochs (patience 10); the preset's 40-epoch pre-training and the default
# SASRec init (patience 20). STORE (default: the shared ./artifacts) lets the study reuse the mining, init
# and pre-training that `dr4sr run --preset paper-era` runs built. Paper N@20: .0385/.0398/.0390/.0391/.0359.
# Extra arguments go to `dr4sr tune` (e.g. --resume).
out=${OUT:-runs/bench/gamma-beauty-paper-era}
STORE=${STORE:-artifacts} exec "$(dirname "$0")/tune_study.sh" search_spaces/gamma_sweep_paper_era.yaml "$out" \
    --set train.max_epochs=60 --set train.patience=10 "$@"
