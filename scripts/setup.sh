#!/usr/bin/env bash
# Creates .venv with the pinned dependencies (idempotent: reruns only when the lock file changed).
# torch is pinned exactly: an unpinned `torch` pulls a multi-GB CUDA build. For a GPU machine set
# TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0" with TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 required, found {sys.version}"'
stamp=.venv/.installed-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}" --index-url "$TORCH_INDEX_URL"
fi
.venv/bin/python -m pip install -q -r requirements.lock
.venv/bin/python -m pip install -q --no-deps -e .
rm -f .venv/.installed-*
touch "$stamp"
