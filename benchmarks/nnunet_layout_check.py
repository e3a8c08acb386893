"""Check that nnU-Net v2's own tools read `sss_predict --output-format nnunet` folders.

    python benchmarks/nnunet_layout_check.py --out DIR --nnunet-bin /path/to/nnunet-venv/bin

Makes the demo dataset in DIR, trains one small fold (10 epochs of 25 iterations), predicts the test cases twice in
nnU-Net's layout with probabilities (the student and its EMA teacher), then runs nnU-Net's
`nnUNetv2_ensemble` on the two folders and `nnUNetv2_evaluate_folder` on the student's, and compares
nnU-Net's Dice per class with `sss_evaluate`'s on the same folder. Exit 0 when nnU-Net's tools ran
and the Dice values agree (1e-6); the numbers are printed. nnunetv2 lives in its own venv (never a
dependency of this project).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def _run(command: list[str], env: dict) -> None:
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="work folder (made if missing)")
    p.add_argument("--nnunet-bin", type=Path, required=True, help="bin folder of a venv with nnunetv2")
    args = p.parse_args()
    out = args.out.resolve()
    env = {**os.environ, **{k: str(out / k) for k in ("SSS_raw", "SSS_preprocessed", "SSS_results")}}
    env.pop("nnUNet_raw", None)
    raw = out / "SSS_raw" / "Dataset900_DemoBHSD"
    _run(["sss_make_demo", "--no-progress"], env)
    _run(["sss_plan_and_preprocess", "-d", "DemoBHSD", "--sam2-variant", "test", "--no-progress"], env)
    _run(["sss_train", "DemoBHSD", "2d", "0", "--epochs", "10", "--iters-per-epoch", "25", "--warmup-epochs", "5",
          "--num-workers", "0", "--no-progress", "--disable-val-tta"], env)
    folders = {w: out / f"pred_{w}" for w in ("student", "teacher")}
    for weights, folder in folders.items():
        _run(["sss_predict", "-i", str(raw / "imagesTs"), "-o", str(folder), "--output-format", "nnunet",
              "--save-probabilities", "--weights", weights, "--disable-tta", "-np", "0", "--no-progress"], env)
    ensemble = out / "ensemble"
    _run([str(args.nnunet_bin / "nnUNetv2_ensemble"), "-i", *map(str, folders.values()), "-o", str(ensemble), "-np", "1"], env)
    cases = sorted(p.name for p in raw.joinpath("labelsTs").glob("*.nii.gz"))
    written = sorted(p.name for p in ensemble.glob("*.nii.gz"))
    if written != cases:
        raise SystemExit(f"nnUNetv2_ensemble wrote {written}, expected {cases}")
    student = folders["student"]
    _run([str(args.nnunet_bin / "nnUNetv2_evaluate_folder"), str(raw / "labelsTs"), str(student),
          "-djfile", str(student / "dataset.json"), "-pfile", str(student / "plans.json"), "-o", str(out / "nnunet_summary.json")], env)
    _run(["sss_evaluate", "-ref", str(raw / "labelsTs"), "-pred", str(student), "-d", "DemoBHSD", "-o",
          str(out / "sss_summary.json"), "--no-progress"], env)
    theirs = json.loads((out / "nnunet_summary.json").read_text())["mean"]
    ours = json.loads((out / "sss_summary.json").read_text())["mean_per_class"]
    worst = 0.0
    print("class  nnU-Net Dice  sss_evaluate Dice")
    for value, metrics in sorted(ours.items()):
        nnunet_dice = theirs[value]["Dice"]
        print(f"{value:>5}  {nnunet_dice:12.6f}  {metrics['dice']:17.6f}")
        worst = max(worst, abs(nnunet_dice - metrics["dice"]))
    print(f"nnUNetv2_ensemble read both folders and wrote {len(written)} case(s); largest Dice difference {worst:.2e}")
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
