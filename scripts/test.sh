#!/usr/bin/env bash
# The test command: sets up .venv if needed, lints (ruff: errors, import order), then runs the whole suite
# (pass pytest args to narrow it; they skip the lint).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
export DR4SR_DATA_DIR=${DR4SR_DATA_DIR:-$(cd .. && pwd)/shared/datasets}
if [ $# -eq 0 ]; then
  .venv/bin/ruff check platform tests jobs benchmarks
fi
# pyproject's testpaths gives `tests` when no path is passed, so a file or folder narrows the run
exec .venv/bin/python -m pytest -q "$@"
