"""Where each class's test voxels go: the voxel confusion of a benchmark variant's saved test predictions.

Usage: python benchmarks/prediction_confusion.py --out DIR VARIANT [VARIANT ...] [--seeds 0 1 2]
       [--schedule budget10min]

DIR is the --out folder of benchmarks/ssl_benchmark.py, which keeps every run's test predictions in
DIR/seed_N/predictions/VARIANT_SCHEDULE. Per variant, pooled over the seeds (default: every seed that has
its predictions) and the pool's test cases: the share of each true class's voxels predicted as each
class (rows sum to 1) and the precision of each predicted class. Prints markdown and writes
DIR/confusion.json. This is how the IPH/IVH trade of the semi-supervised variants was measured
(documentation/benchmarks.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ssl_benchmark import DATASET_FOLDER, predictions_folder  # noqa: E402
from sss_auto.io.atomic import read_json, write_json_atomic  # noqa: E402
from sss_auto.io.nifti import read_image  # noqa: E402


def confusion_counts(pairs: Iterable[tuple[np.ndarray, np.ndarray]], num_classes: int) -> np.ndarray:
    """int64 (K+1, K+1) voxel counts, rows the true class and columns the predicted one, over (truth, prediction) pairs."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    for truth, prediction in pairs:
        if truth.shape != prediction.shape:
            raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
        flat = truth.astype(np.int64).ravel() * num_classes + prediction.astype(np.int64).ravel()
        counts += np.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    return counts


def shares(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall rows: each true class's voxels split over the predicted classes, precision per predicted class); NaN where empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / counts.sum(1, keepdims=True), np.diag(counts) / counts.sum(0)


def variant_counts(out: Path, variant: str, seeds: list[int], schedule: str, num_classes: int) -> np.ndarray:
    """The pooled counts of one variant's test predictions over `seeds` against the pool's labelsTs."""
    truth_folder = out / "pool" / DATASET_FOLDER / "labelsTs"
    cases = sorted(truth_folder.glob("*.nii.gz"))
    if not cases:
        raise SystemExit(f"no test labels in {truth_folder}")

    def pairs():
        for seed in seeds:
            folder = predictions_folder(out / f"seed_{seed}", variant, schedule)
            for case in cases:
                if not (folder / case.name).is_file():
                    raise SystemExit(f"{folder / case.name} is missing: seed {seed} has no complete {variant} predictions")
                yield read_image(case)[0], read_image(folder / case.name)[0]

    return confusion_counts(pairs(), num_classes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the --out folder of benchmarks/ssl_benchmark.py")
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: every seed with the variant's predictions")
    parser.add_argument("--schedule", default="budget10min", help="the run tag of the predictions folder")
    args = parser.parse_args(argv)
    labels = read_json(args.out / "pool" / DATASET_FOLDER / "dataset.json")["labels"]
    names = [name for name, _ in sorted(labels.items(), key=lambda item: int(item[1]))]
    results, lines = {}, []
    for variant in args.variants:
        seeds = args.seeds or sorted(int(root.name.removeprefix("seed_")) for root in args.out.glob("seed_*")
                                     if root.name.removeprefix("seed_").isdigit()
                                     and predictions_folder(root, variant, args.schedule).is_dir())
        if not seeds:
            raise SystemExit(f"no predictions of {variant} ({args.schedule}) under {args.out}")
        counts = variant_counts(args.out, variant, seeds, args.schedule, len(names))
        recall, precision = shares(counts)
        results[variant] = {"seeds": seeds, "classes": names, "counts": counts.tolist()}
        lines += [f"\n{variant}, seeds {seeds} (true → predicted; last column: precision of the predicted class)\n",
                  "| true \\ predicted | " + " | ".join(names) + " | precision |", "|---" * (len(names) + 2) + "|"]
        lines += [f"| {names[k]} | " + " | ".join(f"{v:.3f}" for v in recall[k]) + f" | {precision[k]:.3f} |"
                  for k in range(len(names))]
    write_json_atomic(results, args.out / "confusion.json")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
