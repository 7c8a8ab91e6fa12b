#!/usr/bin/env bash
# Table 3 at real size through the product's own grid job: every dataset, full training (early stopping on
# validation NDCG@20, patience 20), two runs at a time with one thread each. Resumable: the same command
# skips finished runs and resumes interrupted ones from their checkpoints in the store.
#   part a: SASRec x {beauty, toys, sports, yelp} x {backbone, dr4sr, pattern, dr4sr+, constant} x seeds {0, 1}
#           (the regenerating variants with --preset paper-era, the recipe that produced the paper's numbers;
#           every cell's seed 0 runs before any seed 1)
#   part b: the other five target models (BERT4Rec included) x 4 datasets x {backbone, dr4sr, pattern} at
#           seed 0, in the same folder, cheapest first (FMLP-Rec's epoch costs ~14 SASRec epochs: benchmarks/grid_estimate.py)
#   part c: the data-centric baselines ∞-AE and MELT, one row per dataset (MELT at seeds 0 and 1, each
#           fine-tuning part a's SASRec backbone run of its seed, taken from the store)
# Usage: benchmarks/table3_grid.sh a|b|c [extra dr4sr grid args]; then `dr4sr grid --status --out $OUT`,
# `dr4sr report $OUT` (table3.md/.tex/.csv, table3_<dataset>.png), `dr4sr grid --out $OUT --export DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/table3}
STORE=${STORE:-artifacts}
part=${1:?part a or b}; shift
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1
if [ -z "${DR4SR_DATA_DIR:-}" ] && [ -d ../shared/datasets ]; then export DR4SR_DATA_DIR=$(cd ../shared/datasets && pwd); fi
common=(--out "$OUT" --store "$STORE" --datasets beauty toys sports yelp --preset paper-era --max-concurrent 2)
case "$part" in
  a) exec .venv/bin/dr4sr grid "${common[@]}" --backbones sasrec \
       --variants backbone dr4sr pattern dr4sr+ constant --seeds 0 1 "$@" ;;
  b) exec .venv/bin/dr4sr grid "${common[@]}" --backbones gcegnn cl4srec gru4rec bert4rec fmlp \
       --variants backbone dr4sr pattern --seeds 0 "$@" ;;
  c) exec .venv/bin/dr4sr grid "${common[@]}" --backbones sasrec --variants backbone --seeds 0 1 \
       --baselines infae melt "$@" ;;
  *) echo "part must be a, b or c" >&2; exit 2 ;;
esac
