#!/usr/bin/env bash
# The main job: backbone vs DR4SR on Beauty with SASRec, end to end on a local Ray and a local
# artifact folder (./artifacts). Extra arguments go to `dr4sr compare` (e.g. --smoke-test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
# datasets: $DR4SR_DATA_DIR, else ../shared/datasets when present, else downloaded once and verified
if [ -z "${DR4SR_DATA_DIR:-}" ] && [ -d ../shared/datasets ]; then export DR4SR_DATA_DIR=$(cd ../shared/datasets && pwd); fi
exec .venv/bin/dr4sr compare --dataset beauty --backbone sasrec --out runs/beauty-sasrec "$@"
