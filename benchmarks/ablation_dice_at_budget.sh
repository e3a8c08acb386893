#!/usr/bin/env bash
# Validation Dice on the demo dataset after about the same wall-clock budget (~7 min each on a 2-core CPU):
# supervised only vs weak-to-strong (no DFE, no PCSW, no refinement) vs full SSS.
# Iterations per variant are set from step times measured on this machine (benchmarks/train_step_time.py
# and a calibration run) so that the runs cost about the same; the wall times are printed and reported.
# Usage: SSS_* set, demo planned with --sam2-variant test; bash benchmarks/ablation_dice_at_budget.sh [FOLD] [EPOCHS]
set -euo pipefail
FOLD=${1:-0}
EPOCHS=${2:-20}
COMMON=(DemoBHSD 2d "$FOLD" --epochs "$EPOCHS" --warmup-epochs 6 --pcsw-refresh-epochs 5 --batch-size 4 --lr 1e-3
        --num-workers 1 --no-progress --disable-val-tta)
mkdir -p benchmarks/results
run() {
  local name=$1; shift
  local start=$SECONDS
  sss_train "${COMMON[@]}" "$@" > /dev/null 2>"benchmarks/results/ablation_${name}.log"
  echo "$name wall_s=$((SECONDS - start))"
}
run supervised --supervised-only --iters-per-epoch 97
run weak_to_strong --no-dfe --no-pcsw --no-refine --iters-per-epoch 57
run sss --iters-per-epoch 28
sss_summarize -d DemoBHSD
