#!/usr/bin/env bash
# The main job, on Beauty with SASRec, end to end on a local artifact folder (./artifacts): the backbone,
# DR4SR with the recipe that produced the paper's numbers (--preset paper-era), and the two recipes that
# carry the gain: `pattern` (every mined pattern + the original sequences, no regenerator) and `constant`
# (the DR4SR data with the non-mined rows at weight 0.5), with gains and paired tests against the backbone. Extra arguments go to `dr4sr compare` (e.g. --smoke-test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
# datasets: $DR4SR_DATA_DIR, else ../shared/datasets when present, else downloaded once and verified
if [ -z "${DR4SR_DATA_DIR:-}" ] && [ -d ../shared/datasets ]; then export DR4SR_DATA_DIR=$(cd ../shared/datasets && pwd); fi
exec .venv/bin/dr4sr compare --dataset beauty --backbone sasrec --variants backbone dr4sr pattern constant \
    --preset paper-era --out runs/beauty-sasrec "$@"
