#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run (about 7 minutes on an H200):
#   1. the CUDA tests (tests/gpu: bf16 step vs fp32 CPU, memory estimate vs the allocator, train/--c/predict, NCCL);
#   2. memory planning: for several budgets, the planner's choice at a 512² BHSD patch (6 classes) and the
#      measured peak of that step under bf16 autocast, full precision for the largest budget;
#   3. step time SSS vs supervised on the GPU, with the configuration the planner picks for this GPU;
#   4. sss_demo on the GPU.
# Usage: bash benchmarks/gpu_checks.sh [OUTPUT_FOLDER]   (the project installed, e.g. pip install -e ".[test]")
# Each step has its own time limit and the script goes on after a failure; results and logs land in
# OUTPUT_FOLDER (default benchmarks/results/gpu).
set -u
out=$(realpath -m "${1:-benchmarks/results/gpu}")
mkdir -p "$out"
export PYTHONUNBUFFERED=1
step() { echo "== $(date +%T) $*" | tee -a "$out/steps.txt"; }

step environment
{ nvidia-smi; python -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"; } >"$out/environment.txt" 2>&1

step CUDA tests
timeout 300 python -m pytest -q -m gpu tests/gpu -rA -s >"$out/pytest_gpu.txt" 2>&1
echo "pytest exit $?" | tee -a "$out/steps.txt"

step memory planning
for budget in 12 21.6 40 72 125; do
  timeout 120 python benchmarks/measure_step_memory.py --device cuda --amp --plan-budget-gib "$budget" --patch 512 --classes 6 \
    >>"$out/memory_plans.jsonl" 2>>"$out/memory_plans.err" || echo "budget $budget: exit $?" | tee -a "$out/steps.txt"
done
timeout 120 python benchmarks/measure_step_memory.py --device cuda --plan-budget-gib 72 --patch 512 --classes 6 \
  >>"$out/memory_plans.jsonl" 2>>"$out/memory_plans.err" || echo "fp32 72: exit $?" | tee -a "$out/steps.txt"

step step time
work=$(mktemp -d)
export SSS_raw=$work/raw SSS_preprocessed=$work/preprocessed SSS_results=$work/results
sss_make_demo --no-progress >"$out/demo_data.txt" 2>&1
timeout 200 sss_plan_and_preprocess -d DemoBHSD --no-progress >"$out/plan.txt" 2>&1
python - "$SSS_preprocessed" >>"$out/plan.txt" <<'EOF'
import json, pathlib, sys
for plans in pathlib.Path(sys.argv[1]).glob("*/plans.json"):
    c = json.loads(plans.read_text())["configurations"]["2d"]
    print("planned:", {k: c[k] for k in ("sam2_variant", "patch_size", "batch_size_labeled", "estimated_step_memory_gib", "gpu_memory_target_gib")})
EOF
batch=$(grep -o "'batch_size_labeled': [0-9]*" "$out/plan.txt" | grep -o "[0-9]*$")
timeout 240 python benchmarks/train_step_time.py -d DemoBHSD --device cuda --batch "${batch:-4}" --steps 10 --threads 8 \
  >"$out/step_time_planned.json" 2>"$out/step_time.err" || echo "step time: exit $?" | tee -a "$out/steps.txt"

step sss_demo
timeout 300 sss_demo -o "$work/demo" --device cuda --num-workers 4 --no-progress >"$out/sss_demo.txt" 2>&1
echo "sss_demo exit $?" | tee -a "$out/steps.txt"
step done
