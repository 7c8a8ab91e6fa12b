#!/usr/bin/env bash
# Paper Figure 7 through `dr4sr tune`: SASRec on Toys, K in {1,3,5,7,9}, seeds 0 1 (search_spaces/k_sweep.yaml).
# Reduced budgets, to fit about 2 h on a 2-core CPU: pre-training 8 epochs per K (paper 40), target
# SASRec <= 50 epochs (patience 10), SASRec init <= 100 epochs (patience 10).
# Paper N@20: .0470/.0482/.0504/.0502/.0505. Extra arguments go to `dr4sr tune`.
exec "$(dirname "$0")/tune_study.sh" search_spaces/k_sweep.yaml "${OUT:-runs/bench/k-toys}" \
    --set train.max_epochs=50 --set train.patience=10 --set pretrain.max_epochs=8 \
    --set 'init.sasrec={train: {max_epochs: 100, patience: 10}}' "$@"
