"""Load test: preprocess and predict a pool of a few hundred generated cases in bounded memory,
kill -9 each command part-way, resume it, and check that the result is complete.

Usage:
    python benchmarks/load_test.py [--cases 300] [--workers 2] [--work /tmp/sss_load] [--shape 16 128 128]

Runs the installed entry points (sss_plan_and_preprocess, sss_train, sss_predict) in fresh SSS_*
folders under --work. Peak RSS is sampled every 0.1 s from /proc over the whole process tree (the
command and its worker processes); "peak main" is the largest single process. Prints a markdown table
and writes benchmarks/results/load_test.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from process_tree import Measured, measure
from sss_auto.dataset.demo import DemoSpec, make_demo_dataset
from sss_auto.io.atomic import TEMPORARY_PATTERN

DATASET = "Dataset900_DemoBHSD"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=300, help="unlabeled cases in the pool (default 300)")
    parser.add_argument("--workers", type=int, default=2, help="-np of preprocessing and prediction")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sss_load"), help="working folder (emptied first)")
    parser.add_argument("--shape", type=int, nargs=3, default=(16, 128, 128), help="nominal z y x of a case")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    roots = {name: args.work / name for name in ("raw", "preprocessed", "results")}
    env = dict(os.environ, SSS_raw=str(roots["raw"]), SSS_preprocessed=str(roots["preprocessed"]),
               SSS_results=str(roots["results"]))
    make_demo_dataset(roots["raw"] / DATASET, DemoSpec(n_labeled=6, n_unlabeled=args.cases, n_test=1,
                                                       shape=tuple(args.shape), seed=7))
    total = 6 + args.cases
    cache = roots["preprocessed"] / DATASET / "2d"
    rows: list[Measured] = []

    plan = ["sss_plan_and_preprocess", "-d", "DemoBHSD", "--sam2-variant", "test", "--method", "full", "-np", str(args.workers),
            "--no-progress"]
    rows.append(measure(plan, env, kill_when=lambda: len(list(cache.glob("*.json"))) >= total // 3))
    rows.append(measure(plan, env))
    cached = len([p for p in cache.glob("*.json") if not p.name.startswith(".")])
    assert cached == total, f"{cached} of {total} cases cached"

    # A supervised-only model is enough to load-test prediction (no PCSW bank over the whole pool).
    rows.append(measure(["sss_train", "DemoBHSD", "2d", "0", "--supervised-only", "--epochs", "1", "--iters-per-epoch", "2",
                         "--warmup-epochs", "0", "--batch-size", "2", "--num-workers", "1", "--no-progress",
                         "--disable-val-tta"], env))

    output = args.work / "predictions"
    predict = ["sss_predict", "-d", "DemoBHSD", "-i", str(roots["raw"] / DATASET / "imagesUnlabeled"), "-o", str(output),
               "-np", str(args.workers), "--disable-tta", "--no-progress"]
    finished = lambda: len([p for p in output.glob("*.nii.gz") if not p.name.startswith(".")])  # noqa: E731
    rows.append(measure(predict, env, kill_when=lambda: output.is_dir() and finished() >= args.cases // 3))
    rows.append(measure(predict + ["--continue"], env))
    assert finished() == args.cases, f"{finished()} of {args.cases} predictions"
    assert not list(output.glob(TEMPORARY_PATTERN)), "temporary files left"

    print(f"pool: {args.cases} unlabeled + 6 labeled cases of about {tuple(args.shape)} voxels, -np {args.workers}\n")
    print("| command | killed | exit | wall s | peak RSS tree MiB | peak RSS largest process MiB |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| `{row.command}` | {'yes' if row.killed else 'no'} | {row.returncode} | {row.wall_s} | "
              f"{row.peak_tree_mib} | {row.peak_process_mib} |")
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "load_test.json").write_text(json.dumps({"cases": args.cases, "workers": args.workers,
                                                        "shape": list(args.shape),
                                                        "rows": [{k: v for k, v in asdict(r).items() if k != "lines"}
                                                                 for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
