#!/usr/bin/env bash
# The main job: backbone vs DR4SR on Beauty with SASRec, end to end on a local Ray and a local
# artifact folder (./artifacts). Extra arguments go to `dr4sr compare` (e.g. --smoke-test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
exec .venv/bin/dr4sr compare --dataset beauty --backbone sasrec --out runs/beauty-sasrec "$@"
