#!/usr/bin/env bash
# Validation Dice on the demo dataset after about the same wall-clock budget (~400 s each on a 2-core CPU):
# supervised only vs weak-to-strong (no DFE, no PCSW, no refinement) vs full SSS vs full SSS with one
# strong view (--strong-views 1, an ablation: SSS_METHOD uses two).
# Every variant runs 40 iterations per epoch with the same LR schedule shape; the SSL variants start
# with the same 8 supervised warm-up epochs (320 iterations), so their teachers start from comparable
# models. The number of epochs per variant was set from step times measured on this machine
# (benchmarks/train_step_time.py) so that the runs cost about the same; the wall times are printed.
# Usage: SSS_* set, demo planned with --sam2-variant test; bash benchmarks/ablation_dice_at_budget.sh [FOLD]
set -euo pipefail
FOLD=${1:-0}
COMMON=(DemoBHSD 2d "$FOLD" --iters-per-epoch 40 --warmup-epochs 8 --pcsw-refresh-epochs 5 --batch-size 4 --lr 1e-3
        --num-workers 1 --no-progress --disable-val-tta)
mkdir -p benchmarks/results
run() {
  local name=$1; shift
  local start=$SECONDS
  sss_train "${COMMON[@]}" "$@" > /dev/null 2>"benchmarks/results/ablation_fold${FOLD}_${name}.log"
  echo "$name wall_s=$((SECONDS - start))"
}
run supervised --supervised-only --epochs 66
run weak_to_strong --no-dfe --no-pcsw --no-refine --epochs 60
run sss --epochs 25
run sss_one_view --strong-views 1 --epochs 31
sss_summarize -d DemoBHSD
