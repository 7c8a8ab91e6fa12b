#!/usr/bin/env bash
# The SASRec, FMLP and pre-training epoch benchmarks on a GPU, each eager fp32 (the
# reference), bf16 autocast, torch.compile, and both. Keep an option only where it is faster and its
# losses / N@20 stay within the seed-to-seed noise of the fp32 run (same seed, same batches).
#   DR4SR_DATA_DIR=... [PY=python] [DEVICE=cuda] [EPOCHS=3] bash benchmarks/gpu_bench.sh [LOG]
# PY must be a Python whose torch sees the GPU (the CPU .venv does not: see the README's GPU install).
# Every run's full output goes to LOG (default benchmarks/results/gpu_bench.log); the summary lines are
# printed. DEVICE=cpu runs the same matrix on the CPU (a check of the script, not a GPU figure).
# Needs only torch, numpy, pyyaml, pyarrow, pandas (no Ray). On a GPU machine whose python3 has a
# CUDA torch: copy Beauty into an ignored folder of the checkout, carry it, and run
#   DR4SR_DATA_DIR=.gpudata PY=python3 bash benchmarks/gpu_bench.sh $OUT/gpu_bench.log
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-3}
LOG=${1:-benchmarks/results/gpu_bench.log}
export RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=$PWD/platform PYTHONUNBUFFERED=1
: > "$LOG"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$LOG"
fails=0
run() {  # label, then the benchmark's command line
    local label=$1; shift
    echo "== $label: $*" >> "$LOG"
    if ! "$PY" "$@" >> "$LOG" 2>&1; then
        echo "$label: FAILED (see $LOG)"; fails=$((fails + 1)); return
    fi
    # the timed epochs' summary (epoch_profile) or the per-epoch lines (pretrain_profile)
    echo "$label: $(awk '/^== /{s=""} /^warm-up|^epoch |^median|epochs:/{s=s" | "$0} END{print s}' "$LOG" | tr -s ' ')"
}
for backbone in sasrec fmlp; do
    for opt in "" "--precision bf16" "--compile" "--precision bf16 --compile"; do
        label=${opt//--precision /}; label=${label//--/}
        # shellcheck disable=SC2086
        run "$backbone ${label:-fp32}" benchmarks/epoch_profile.py --backbone "$backbone" --device "$DEVICE" \
            --epochs "$EPOCHS" $opt
    done
done
for opt in "" "--precision bf16" "--compile"; do
    label=${opt//--precision /}; label=${label//--/}
    # shellcheck disable=SC2086
    run "pretrain ${label:-fp32}" benchmarks/pretrain_profile.py --device "$DEVICE" --epochs "$EPOCHS" \
        --store "${STORE:-artifacts}" $opt
done
exit $((fails > 0))
