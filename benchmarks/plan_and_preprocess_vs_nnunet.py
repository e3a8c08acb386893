"""Wall time of sss_plan_and_preprocess vs nnUNetv2_plan_and_preprocess on the same labeled cases.

Usage:
    python benchmarks/plan_and_preprocess_vs_nnunet.py --nnunet-bin /path/to/venv/bin [--labeled 20] [-np 2]

nnU-Net v2 is installed in its own environment (pip install nnunetv2); pass its bin folder. Both
tools get the same demo dataset with labeled cases only (nnU-Net ignores imagesUnlabeled), the same
worker count, fresh output folders, and are run as a user would (fingerprint + plan + preprocess of
all configurations each plans by default; sss plans the 2d configuration, nnU-Net 2d and 3d_fullres,
so nnU-Net is also timed with `-c 2d`). Prints a markdown table with times and the chosen plans.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sss_auto.dataset.demo import DemoSpec, make_demo_dataset


def _timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode:
        raise SystemExit(f"{command[0]} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nnunet-bin", required=True, type=Path)
    parser.add_argument("--labeled", type=int, default=20)
    parser.add_argument("-np", type=int, default=2)
    parser.add_argument("--variant", default="test", help="SAM-2 variant for sss (planning all variants takes ~10 s more)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_pp_"))
    raw = work / "raw"
    make_demo_dataset(raw / "Dataset900_DemoBHSD", DemoSpec(args.labeled, 0, 0, seed=7))
    rows = []
    for name, command, roots in [
        ("sss_plan_and_preprocess", ["sss_plan_and_preprocess", "-d", "900", "-np", str(args.np), "--sam2-variant", args.variant, "--no-progress"],
         {"SSS_raw": raw, "SSS_preprocessed": work / "sss_pre", "SSS_results": work / "sss_res"}),
        ("nnUNetv2_plan_and_preprocess (2d + 3d_fullres)", [str(args.nnunet_bin / "nnUNetv2_plan_and_preprocess"), "-d", "900", "-np", str(args.np), "-npfp", str(args.np)],
         {"nnUNet_raw": raw, "nnUNet_preprocessed": work / "nn_pre", "nnUNet_results": work / "nn_res"}),
        ("nnUNetv2_plan_and_preprocess -c 2d", [str(args.nnunet_bin / "nnUNetv2_plan_and_preprocess"), "-d", "900", "-c", "2d", "-np", str(args.np), "-npfp", str(args.np)],
         {"nnUNet_raw": raw, "nnUNet_preprocessed": work / "nn_pre2d", "nnUNet_results": work / "nn_res"}),
    ]:
        env = {**os.environ, **{k: str(v) for k, v in roots.items()}}
        rows.append((name, _timed(command, env), roots))
    sss_plans = json.loads((work / "sss_pre" / "Dataset900_DemoBHSD" / "plans.json").read_text())["configurations"]["2d"]
    nn_plans = json.loads((work / "nn_pre" / "Dataset900_DemoBHSD" / "nnUNetPlans.json").read_text())["configurations"]
    print(f"labeled cases: {args.labeled}, workers: {args.np}, machine: {os.cpu_count()} CPU cores, python {sys.version.split()[0]}\n")
    print("| command | wall time (s) | ratio sss / this |")
    print("|---|---|---|")
    for name, seconds, _ in rows:
        print(f"| {name} | {seconds:.1f} | {rows[0][1] / seconds:.2f} |")
    print("\n| plans | spacing (z, y, x) mm | patch | batch |")
    print("|---|---|---|---|")
    print(f"| sss 2d | {tuple(round(s, 3) for s in sss_plans['spacing_mm'])} | {tuple(sss_plans['patch_size'])} | "
          f"{sss_plans['batch_size_labeled']} labeled + {sss_plans['batch_size_unlabeled']} unlabeled ({sss_plans['sam2_variant']}) |")
    for config in ("2d", "3d_fullres"):
        if config in nn_plans:
            c = nn_plans[config]
            print(f"| nnU-Net {config} | {tuple(round(s, 3) for s in c['spacing'])} | {tuple(c['patch_size'])} | {c['batch_size']} |")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
