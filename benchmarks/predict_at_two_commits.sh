#!/bin/bash
# sss_predict wall time of the code at another commit against the installed one, alternating, and whether the
# predictions are identical. Usage (from a folder whose data/ holds SSS_raw, SSS_preprocessed, SSS_results with a
# trained DemoBHSD run, e.g. made as documentation/benchmarks.md "scipy.ndimage vs scikit-image" says):
#   git worktree add OLD_TREE <commit>
#   bash benchmarks/predict_at_two_commits.sh OLD_TREE [REPEATS] [sss_predict options...]
# Run it alone on the machine: it is a timing.
set -euo pipefail
OLD_TREE=$(cd "$1" && pwd); REPEATS=${2:-3}; shift $(( $# >= 2 ? 2 : 1 ))
OPTIONS=("$@"); [ ${#OPTIONS[@]} -gt 0 ] || OPTIONS=(-d DemoBHSD -c 2d --run SSS -f 0 1 -np 1)
export SSS_raw=$PWD/data/SSS_raw SSS_preprocessed=$PWD/data/SSS_preprocessed SSS_results=$PWD/data/SSS_results
IN=$SSS_raw/Dataset900_DemoBHSD/imagesTs
for rep in $(seq "$REPEATS"); do
  for side in old new; do
    rm -rf "out_$side"
    start=$(date +%s.%N)
    if [ "$side" = old ]; then
      PYTHONPATH=$OLD_TREE python -c "import sys; from sss_auto.cli.predict import main; sys.exit(main(sys.argv[1:]))" \
        -i "$IN" -o "out_$side" "${OPTIONS[@]}" --no-progress --verbose > "predict_$side.log" 2>&1
    else
      python -c "import sys; from sss_auto.cli.predict import main; sys.exit(main(sys.argv[1:]))" \
        -i "$IN" -o "out_$side" "${OPTIONS[@]}" --no-progress --verbose > "predict_$side.log" 2>&1
    fi
    end=$(date +%s.%N)
    echo "$side run $rep: $(echo "$end - $start" | bc) s, $(grep -c "pass 2 runs" "predict_$side.log" || true) case(s) ran pass 2"
  done
  python - <<'PY'
import pathlib

import numpy as np
import SimpleITK as sitk

old, new = (sorted(pathlib.Path(f"out_{side}").glob("*.nii.gz")) for side in ("old", "new"))
assert old and [p.name for p in old] == [p.name for p in new], "the two runs predicted different cases"
same = all(np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(a))), sitk.GetArrayFromImage(sitk.ReadImage(str(b))))
           for a, b in zip(old, new))
print(f"{len(old)} predictions, identical: {same}")
PY
done
