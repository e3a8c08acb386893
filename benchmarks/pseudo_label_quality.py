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
With --band-multiples M ..., also where the taught-away voxels (at --band-tau) lie: the share of them
that rank, for some foreground class k, in the top M × π_k of their volume's voxels by p_k (π_k: the
labeled voxel fraction of the run's fingerprint), and the share of all confident-background voxels in
that band: what the foreground band (`sss_train --foreground-band M`) would ignore.
With --tta the volumes are predicted with mirror test-time augmentation (DIR/pseudo_label_quality_tta.json).
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
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ssl_benchmark import (DATASET_FOLDER, DATASET_NAME, _parser, _run, pool_spec, smoke_sizes,  # noqa: E402
                                      sss_env)
from planners.fingerprint import load_fingerprint  # noqa: E402
from sss_auto.dataset.demo import demo_cases  # noqa: E402
from sss_auto.io.atomic import read_json, write_json_atomic  # noqa: E402
from sss_auto.io.nifti import read_image  # noqa: E402
from sss_auto.method.pseudo_labels import priors_from_fingerprint  # noqa: E402
from sss_auto.method.readiness import plausible_shares, ranked_highest  # noqa: E402
from sss_auto.method.reliability import PseudoLabelRule, reliability_counts  # noqa: E402

UNLABELED = "imagesUnlabeled"


def unlabeled_truth(out: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The generator's labels of the pool's unlabeled volumes (by case id) and the class names, from the
    benchmark's recorded command; raises when a regenerated image differs from the pool's."""
    command = read_json(out / "results.json")["command"]
    args, _ = _parser().parse_known_args(shlex.split(command)[1:])  # older records joined argv without quoting
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
    but predicted background and confident (for background itself the same as the second): the trainer's own
    `reliability_counts` with one threshold for every class and no alignment."""
    table = np.zeros((len(thresholds), len(probabilities), 3), np.int64)
    for t, tau in enumerate(thresholds):
        rule = PseudoLabelRule(torch.full((len(probabilities),), tau, dtype=torch.float64))
        claimed, found, away, _ = reliability_counts(probabilities, truth, rule)
        table[t] = np.stack([claimed, found, away], 1)
    return table


def labeled_voxel_fractions(fold: Path) -> dict[int, float]:
    """Each foreground class's labeled voxel fraction, from the run's fingerprint (as the trainer reads it)."""
    priors = priors_from_fingerprint(load_fingerprint(fold.parent / "fingerprint.json"))
    return {k: prior.voxel_fraction for k, prior in priors.items()}


def band_counts(probabilities: np.ndarray, truth: np.ndarray, voxel_fractions: dict[int, float],
                multiples: list[float], tau: float) -> np.ndarray:
    """int64 (M, K+2): per multiple m, the taught-away voxels of each class (truth c, background with confidence
    >= tau) inside the band (the top m·π_k of the voxels by p_k, for any foreground k; π: `voxel_fractions`),
    and last the confident-background voxels inside it (column 0 unused)."""
    confident_background = (probabilities.argmax(0) == 0) & (probabilities.max(0) >= tau)
    table = np.zeros((len(multiples), len(probabilities) + 1), np.int64)
    foreground = list(range(1, len(probabilities)))
    volume = torch.from_numpy(probabilities)[None]  # one volume as the trainer's batch: the trainer's band rule
    for i, multiple in enumerate(multiples):
        band_shares = plausible_shares(voxel_fractions, len(probabilities), multiple)
        band = ranked_highest(volume, foreground, band_shares)[0].numpy()
        for c in foreground:
            table[i, c] = (band & confident_background & (truth == c)).sum()
        table[i, -1] = (band & confident_background).sum()
    return table


def predict_command(images: Path, predictions: Path, run: str, weights: str, tta: bool) -> list[str]:
    """sss_predict of fold 0's final checkpoint of `run` (2d), probabilities kept; mirror TTA only with `tta`."""
    command = ["sss_predict", "-i", str(images), "-o", str(predictions), "-d", DATASET_NAME, "-c", "2d", "-f", "0",
               "--run", run, "--checkpoint", "final", "--save-probabilities", "--device", "cpu", "-np", "1",
               "--no-progress"] + ([] if tta else ["--disable-tta"])
    return command + (["--weights", "teacher"] if weights == "teacher" else [])


def run_quality(out: Path, fold: Path, truth: dict[str, np.ndarray], thresholds: list[float], weights: str,
                multiples: list[float] | None = None, band_tau: float = 0.95, tta: bool = False) -> dict:
    """Predict the unlabeled volumes with one run's final checkpoint and count against the truth."""
    root, run = fold.parents[3], fold.parent.name.split("__")[0]
    predictions = root / "predictions" / f"pl_quality_{run}_{weights}"
    shutil.rmtree(predictions, ignore_errors=True)
    _run(predict_command(out / "pool" / DATASET_FOLDER / UNLABELED, predictions, run, weights, tta), sss_env(root, 0),
         root / "logs" / f"pl_quality_{run}_{weights}.log")
    total, truth_voxels, in_band = None, None, 0
    voxel_fractions = labeled_voxel_fractions(fold) if multiples else {}
    for case_id, label in truth.items():
        probabilities = np.load(predictions / f"{case_id}_probabilities.npz")["probabilities"].astype(np.float32)
        table = counts(probabilities, label, thresholds)
        present = np.bincount(label.ravel(), minlength=len(probabilities))
        total = table if total is None else total + table
        truth_voxels = present if truth_voxels is None else truth_voxels + present
        if multiples:
            in_band = in_band + band_counts(probabilities, label, voxel_fractions, multiples, band_tau)
    shutil.rmtree(predictions, ignore_errors=True)
    claimed, right, away = total[..., 0], total[..., 1], total[..., 2]
    result = {"seed": root.name, "run": run, "weights": weights, "tta": tta,
              "precision": np.where(claimed > 0, right / np.maximum(claimed, 1), np.nan).tolist(),
              "recall": (right / np.maximum(truth_voxels, 1)).tolist(),
              "taught_away": (away / np.maximum(truth_voxels, 1)).tolist(),
              "claimed_share": (claimed / np.maximum(truth_voxels.sum(), 1)).tolist(),
              "truth_share": (truth_voxels / truth_voxels.sum()).tolist()}
    if multiples:
        at_tau = total[thresholds.index(band_tau)]
        away_total, background_total = at_tau[:, 2], at_tau[0, 0]
        result["band"] = {"multiples": multiples, "tau": band_tau,
                          "away_in_band": (in_band[:, :-1] / np.maximum(away_total, 1)).tolist(),
                          "background_in_band": (in_band[:, -1] / max(int(background_total), 1)).tolist()}
    return result


def markdown(results: list[dict], classes: list[str], thresholds: list[float]) -> str:
    """One table per class: rows run × seed, columns precision / recall / taught away at each threshold; then the
    band's coverage when measured."""
    lines = []
    for c, name in list(enumerate(classes))[1:]:
        lines += [f"\n**{name}**\n", "| run | seed | " + " | ".join(f"τ={tau:g} P / R / away" for tau in thresholds) + " |",
                  "|---|---|" + "---|" * len(thresholds)]
        for r in results:
            cells = [f"{r['precision'][t][c]:.2f} / {r['recall'][t][c]:.2f} / {r['taught_away'][t][c]:.2f}"
                     for t in range(len(thresholds))]
            lines.append(f"| {r['run']} | {r['seed']} | " + " | ".join(cells) + " |")
    banded = [r for r in results if "band" in r]
    if banded:
        band = banded[0]["band"]
        lines += [f"\n**Taught-away voxels (τ={band['tau']:g}) in the foreground band, per class, and confident background "
                  "in it**\n", "| run | seed | m | " + " | ".join(classes[1:]) + " | background |",
                  "|---|---|---|" + "---|" * len(classes)]
        for r in banded:
            for i, multiple in enumerate(r["band"]["multiples"]):
                cells = [f"{v:.2f}" for v in r["band"]["away_in_band"][i][1:]] + [f"{r['band']['background_in_band'][i]:.3f}"]
                lines.append(f"| {r['run']} | {r['seed']} | {multiple:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the --out folder of benchmarks/ssl_benchmark.py")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.5, 0.8, 0.95, 0.99])
    parser.add_argument("--weights", choices=["student", "teacher"], default="student",
                        help="teacher: the EMA teacher of semi-supervised runs (supervised runs are skipped)")
    parser.add_argument("--tta", action="store_true", help="predict with mirror test-time augmentation (the "
                        "pseudo labels an averaging teacher would give; default: one pass, as a training step labels)")
    parser.add_argument("--band-multiples", type=float, nargs="*", default=[],
                        help="also measure the foreground band of these multiples (e.g. 5 10 20)")
    parser.add_argument("--band-tau", type=float, default=0.95, help="the band's confident-background threshold "
                        "(one of --thresholds)")
    args = parser.parse_args(argv)
    if args.band_multiples and args.band_tau not in args.thresholds:
        parser.error(f"--band-tau {args.band_tau} must be one of --thresholds {args.thresholds}")
    truth, classes = unlabeled_truth(args.out)
    results = []
    for fold in sorted(args.out.glob("seed_*/SSS_results/*/*__2d/fold_0")):
        if not (fold / "checkpoint_final.pth").is_file() or (args.weights == "teacher" and "supervised" in fold.parent.name):
            continue
        results.append(run_quality(args.out, fold, truth, args.thresholds, args.weights, args.band_multiples, args.band_tau,
                                   args.tta))
        print(f"{results[-1]['seed']} {results[-1]['run']}: done", file=sys.stderr)
    write_json_atomic({"thresholds": args.thresholds, "classes": classes, "runs": results},
                      args.out / f"pseudo_label_quality{'_tta' if args.tta else ''}.json")
    print(markdown(results, classes, args.thresholds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
