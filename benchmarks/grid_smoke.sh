#!/usr/bin/env bash
# The grid job's smoke run end to end (5 backbones x 4 datasets x the build's variants, one seed, 300-user
# samples, 2 epochs, 2-epoch stages), timed; a fresh store so every stage runs. Results:
# benchmarks/results/grid_smoke.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1 PYTHONPATH=$PWD/platform
OUT=${OUT:-/tmp/dr4sr-grid-smoke}
rm -rf "$OUT"
uptime
/usr/bin/time -f "wall %e s, peak RSS of the driver %M KB" .venv/bin/python -m dr4sr.cli grid --out "$OUT" \
    --store "$OUT/store" --smoke-test "$@"
uptime
