"""How right are the pseudo labels a trained run gives the unlabeled pool? Per class, against the generator's truth.

Usage: python benchmarks/pseudo_label_quality.py --out DIR [--thresholds 0 0.5 0.8 0.95 0.99] [--weights student]

DIR is the --out folder of benchmarks/ssl_benchmark.py. Its unlabeled volumes ship no labels, but the demo
generator drew them: they are drawn again from the benchmark's recorded command (and the images are checked
to be the pool's, voxel for voxel). Every run folder under DIR/seed_*/SSS_results predicts the unlabeled
volumes once with its final checkpoint (`sss_predict --save-probabilities --disable-tta`), and per class c
and confidence threshold τ (confidence: the top class probability) the script counts, over all volumes:
- precision: of the voxels predicted c with confidence >= τ, the share that are c;
- recall: of the voxels of c, the share predicted c with confidence >= τ;
- taught away: of the voxels of c, the share predicted background with confidence >= τ (what a
  weak-to-strong step with that threshold teaches as background).
Prints markdown and writes DIR/pseudo_label_quality.json. Volumes, not the augmented 2d slices a training
step labels, and the final checkpoint, not the teacher of each step: an estimate of what the unlabeled
loss is made of.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ssl_benchmark import (DATASET_FOLDER, DATASET_NAME, _parser, _run, pool_spec, smoke_sizes,  # noqa: E402
                                      sss_env)
from sss_auto.dataset.demo import demo_cases  # noqa: E402
from sss_auto.io.atomic import read_json, write_json_atomic  # noqa: E402
from sss_auto.io.nifti import read_image  # noqa: E402

UNLABELED = "imagesUnlabeled"


def unlabeled_truth(out: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The generator's labels of the pool's unlabeled volumes (by case id) and the class names, from the
    benchmark's recorded command; raises when a regenerated image differs from the pool's."""
    command = read_json(out / "results.json")["command"]
    args = _parser().parse_args(shlex.split(command)[1:])
    smoke_sizes(args)
    pool = out / "pool" / DATASET_FOLDER
    truth = {}
    for case in demo_cases(pool_spec(args)):
        if case.image_folder != UNLABELED:
            continue
        image, _ = read_image(pool / UNLABELED / f"{case.case_id}_0000.nii.gz")
        if image.shape != case.image.shape or not np.allclose(image, case.image, atol=1e-3):
            raise SystemExit(f"{case.case_id}: the regenerated image is not the pool's; was the pool made by {command!r}?")
        truth[case.case_id] = case.label
    labels = read_json(pool / "dataset.json")["labels"]
    return truth, [name for name, _ in sorted(labels.items(), key=lambda item: item[1])]


def counts(probabilities: np.ndarray, truth: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """int64 (T, K+1, 3): per threshold and class, voxels predicted c and confident, of those truly c, and truly c
    but predicted background and confident (for background itself the same as the second)."""
    confidence, predicted = probabilities.max(0), probabilities.argmax(0)
    table = np.zeros((len(thresholds), len(probabilities), 3), np.int64)
    for t, tau in enumerate(thresholds):
        confident = confidence >= tau
        for c in range(len(probabilities)):
            claimed = confident & (predicted == c)
            table[t, c] = claimed.sum(), (claimed & (truth == c)).sum(), (confident & (predicted == 0) & (truth == c)).sum()
    return table


def run_quality(out: Path, fold: Path, truth: dict[str, np.ndarray], thresholds: list[float], weights: str) -> dict:
    """Predict the unlabeled volumes with one run's final checkpoint and count against the truth."""
    root, run = fold.parents[3], fold.parent.name.split("__")[0]
    predictions = root / "predictions" / f"pl_quality_{run}_{weights}"
    shutil.rmtree(predictions, ignore_errors=True)
    command = ["sss_predict", "-i", str(out / "pool" / DATASET_FOLDER / UNLABELED), "-o", str(predictions), "-d",
               DATASET_NAME, "-c", "2d", "-f", "0", "--run", run, "--checkpoint", "final", "--disable-tta",
               "--save-probabilities", "--device", "cpu", "-np", "1", "--no-progress"]
    if weights == "teacher":
        command += ["--weights", "teacher"]
    _run(command, sss_env(root, 0), root / "logs" / f"pl_quality_{run}_{weights}.log")
    total, truth_voxels = None, None
    for case_id, label in truth.items():
        probabilities = np.load(predictions / f"{case_id}_probabilities.npz")["probabilities"].astype(np.float32)
        table = counts(probabilities, label, thresholds)
        present = np.bincount(label.ravel(), minlength=len(probabilities))
        total = table if total is None else total + table
        truth_voxels = present if truth_voxels is None else truth_voxels + present
    shutil.rmtree(predictions, ignore_errors=True)
    claimed, right, away = total[..., 0], total[..., 1], total[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"seed": root.name, "run": run, "weights": weights,
                "precision": np.where(claimed > 0, right / np.maximum(claimed, 1), np.nan).tolist(),
                "recall": (right / np.maximum(truth_voxels, 1)).tolist(),
                "taught_away": (away / np.maximum(truth_voxels, 1)).tolist(),
                "claimed_share": (claimed / np.maximum(truth_voxels.sum(), 1)).tolist(),
                "truth_share": (truth_voxels / truth_voxels.sum()).tolist()}


def markdown(results: list[dict], classes: list[str], thresholds: list[float]) -> str:
    """One table per class: rows run × seed, columns precision / recall / taught away at each threshold."""
    lines = []
    for c, name in list(enumerate(classes))[1:]:
        lines += [f"\n**{name}**\n", "| run | seed | " + " | ".join(f"τ={tau:g} P / R / away" for tau in thresholds) + " |",
                  "|---|---|" + "---|" * len(thresholds)]
        for r in results:
            cells = [f"{r['precision'][t][c]:.2f} / {r['recall'][t][c]:.2f} / {r['taught_away'][t][c]:.2f}"
                     for t in range(len(thresholds))]
            lines.append(f"| {r['run']} | {r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the --out folder of benchmarks/ssl_benchmark.py")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.5, 0.8, 0.95, 0.99])
    parser.add_argument("--weights", choices=["student", "teacher"], default="student",
                        help="teacher: the EMA teacher of semi-supervised runs (supervised runs are skipped)")
    args = parser.parse_args(argv)
    truth, classes = unlabeled_truth(args.out)
    results = []
    for fold in sorted(args.out.glob("seed_*/SSS_results/*/*__2d/fold_0")):
        if not (fold / "checkpoint_final.pth").is_file() or (args.weights == "teacher" and "supervised" in fold.parent.name):
            continue
        results.append(run_quality(args.out, fold, truth, args.thresholds, args.weights))
        print(f"{results[-1]['seed']} {results[-1]['run']}: done", file=sys.stderr)
    write_json_atomic({"thresholds": args.thresholds, "classes": classes, "runs": results},
                      args.out / "pseudo_label_quality.json")
    print(markdown(results, classes, args.thresholds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
