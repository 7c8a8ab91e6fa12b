#!/usr/bin/env bash
# Run one `dr4sr tune` study with its own store (or $STORE), timed, then how much the shared store saved.
#   [STORE=DIR] benchmarks/tune_study.sh SPACE OUT [dr4sr tune args...]
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1 PYTHONPATH=$PWD/platform
space=$1 out=$2 store=${STORE:-$2/store}
shift 2
started=$(date +%s)
.venv/bin/python -m dr4sr.cli tune --space "$space" --out "$out" --store "$store" "$@"
echo "wall: $(( $(date +%s) - started )) s ($(uptime))"
.venv/bin/python benchmarks/stage_reuse.py "$out" "$store"
