#!/usr/bin/env bash
# Paper Figure 6 through `dr4sr tune`: SASRec on Beauty, DR4SR data with gamma in {0,.1,.3,.5,1}, seeds 0 1
# (search_spaces/gamma_sweep.yaml, 10 trials, one at a time), then the artifact reuse it got.
# Budgets, to fit about 2 h on a 2-core CPU: target SASRec <= 60 epochs (patience 10), pre-training
# 10 epochs, SASRec init <= 100 epochs (patience 10). Paper N@20: .0385/.0398/.0390/.0391/.0359.
# "Without reuse" = every trial rebuilding its mining, init and pre-training: stage_reuse.py prints
# the stage runs and stage seconds the shared store saved (the wall time without reuse is the study's
# wall time plus those seconds). Extra arguments go to `dr4sr tune` (e.g. --resume).
exec "$(dirname "$0")/tune_study.sh" search_spaces/gamma_sweep.yaml "${OUT:-runs/bench/gamma-beauty}" \
    --set train.max_epochs=60 --set train.patience=10 --set pretrain.max_epochs=10 \
    --set 'init.sasrec={train: {max_epochs: 100, patience: 10}}' "$@"
