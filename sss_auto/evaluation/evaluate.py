"""Evaluate a folder of predictions against a folder of reference labels."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sss_auto.errors import DatasetError
from sss_auto.evaluation.conventions import NNUNET, Convention, case_score
from sss_auto.evaluation.metrics import class_metrics, surface_distances
from sss_auto.io.atomic import write_atomic, write_json_atomic
from sss_auto.io.nifti import Geometry, read_image

METRICS = NNUNET.metrics  # the default convention's; a summary lists its own under "metrics"
VOLUMES = ("reference_ml", "prediction_ml")  # per case and class, beside the metrics (not averaged)
VOXELS = ("reference_voxels", "prediction_voxels")  # the same as voxel counts (summary.json only)
FILE_ENDING = ".nii.gz"


def read_pair(prediction_path: Path, reference_path: Path) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Integer label maps of a prediction and its reference, and the reference's geometry.

    Raises:
        DatasetError: their shapes or spacings differ.
    """
    prediction, p_geometry = read_image(prediction_path)
    reference, r_geometry = read_image(reference_path)
    if p_geometry.shape != r_geometry.shape:
        raise DatasetError(f"{prediction_path}: shape {p_geometry.shape} differs from {reference_path} {r_geometry.shape}")
    if not np.allclose(p_geometry.spacing_mm, r_geometry.spacing_mm, rtol=1e-3):
        raise DatasetError(f"{prediction_path}: spacing {p_geometry.spacing_mm} differs from {reference_path} {r_geometry.spacing_mm}")
    return np.rint(prediction).astype(np.int64), np.rint(reference).astype(np.int64), r_geometry


def evaluate_case(prediction_path: Path, reference_path: Path, classes: list[int],
                  convention: Convention = NNUNET) -> dict[str, dict[str, float]]:
    """Metrics (under `convention`), volumes (ml) and voxel counts per class of one case (keys: class value as str)."""
    prediction, reference, r_geometry = read_pair(prediction_path, reference_path)
    voxel_ml = float(np.prod(r_geometry.spacing_mm)) / 1000.0
    out = {}
    for k in classes:
        predicted, referenced = prediction == k, reference == k  # each class's masks made once
        counts = int(referenced.sum()), int(predicted.sum())
        out[str(k)] = {**convention_metrics(predicted, referenced, r_geometry.spacing_mm, convention),
                       **{name: count * voxel_ml for name, count in zip(VOLUMES, counts)},
                       **dict(zip(VOXELS, counts))}
    return out


def convention_metrics(prediction: np.ndarray, reference: np.ndarray, spacing_mm: tuple[float, ...],
                       convention: Convention) -> dict[str, float]:
    """`class_metrics` of two boolean masks with the convention's empty-mask rule and distance units."""
    out = class_metrics(prediction, reference, spacing_mm)
    present = bool(prediction.any()), bool(reference.any())
    if not any(present):
        out["dice"] = out["iou"] = convention.empty_both_dice
    elif not present[1]:
        out["dice"] = out["iou"] = convention.prediction_only_dice
    if convention.voxel_distances:
        out["hd95_vox"], out["asd_vox"] = (surface_distances(prediction, reference, (1.0,) * prediction.ndim)
                                           if all(present) else (math.nan, math.nan))
    return out


def evaluate_folders(reference_folder: Path, prediction_folder: Path, classes: list[int], progress: bool = True,
                     convention: Convention = NNUNET) -> dict:
    """Score every prediction that has a reference; summary with per-case, per-class means and overall means.

    Raises:
        DatasetError: a folder is missing, no prediction matches a reference, or shapes differ.
    """
    for folder in (reference_folder, prediction_folder):
        if not Path(folder).is_dir():
            raise DatasetError(f"{folder}: folder not found")
    predictions = sorted(p for p in Path(prediction_folder).glob(f"*{FILE_ENDING}") if not p.name.startswith("."))
    pairs = [(p, Path(reference_folder) / p.name) for p in predictions if (Path(reference_folder) / p.name).is_file()]
    if not pairs:
        raise DatasetError(f"{prediction_folder}: no prediction has a reference of the same name in {reference_folder}")
    missing = sorted(p.name for p in Path(reference_folder).glob(f"*{FILE_ENDING}") if not (Path(prediction_folder) / p.name).is_file())
    per_case = {}
    for prediction, reference in tqdm(pairs, desc="evaluate", unit="case", disable=None if progress else True):
        per_case[prediction.name[: -len(FILE_ENDING)]] = evaluate_case(prediction, reference, classes, convention)
    metrics = convention.metrics
    mean_per_class = {str(k): {m: nanmean([c[str(k)][m] for c in per_case.values()]) for m in metrics} for k in classes}
    overall = {m: nanmean([v[m] for v in mean_per_class.values()]) for m in metrics}
    undefined = sum(1 for c in per_case.values() for v in c.values() if math.isnan(v["hd95_mm"]) and not math.isnan(v["dice"])
                    and (v["reference_ml"] > 0 or v["prediction_ml"] > 0))
    summary = {"reference_folder": str(reference_folder), "prediction_folder": str(prediction_folder),
               "convention": convention.name, "conventions": convention.description, "metrics": list(metrics),
               "n_cases": len(per_case), "references_without_prediction": missing, "n_undefined_distance": undefined,
               "mean": overall, "mean_per_class": mean_per_class, "per_case": per_case}
    if convention.healthy_fp_threshold is not None:
        summary["case_score"] = case_scores(per_case, convention.healthy_fp_threshold)
    return summary


def case_scores(per_case: dict[str, dict[str, dict[str, float]]], fp_threshold: int) -> dict:
    """The challenge's score of every case (`conventions.case_score`), their mean and sd, and how many were healthy."""
    scores = {case: case_score(per_class, fp_threshold) for case, per_class in per_case.items()}
    healthy = [case for case, per_class in per_case.items() if not any(m["reference_voxels"] for m in per_class.values())]
    values = np.array(list(scores.values()), dtype=float)
    return {"mean": float(values.mean()), "sd": float(values.std()), "n_healthy": len(healthy),
            "fp_threshold_voxels": fp_threshold, "per_case": scores}


def per_case_csv_path(summary_path: Path) -> Path:
    """Where the per-case table of a summary goes: per_case.csv beside summary.json (else <stem>_per_case.csv)."""
    summary_path = Path(summary_path)
    name = "per_case.csv" if summary_path.name == "summary.json" else f"{summary_path.stem}_per_case.csv"
    return summary_path.with_name(name)


def write_summary(summary: dict, target: Path, class_names: dict[str, str] | None = None) -> Path:
    """Write the summary JSON and, beside it, its per-case CSV (one row per case and class); returns the CSV's path.

    Columns: case, class (value), class_name, the summary's metrics and the VOLUMES; empty cells are NaN
    (a class absent from both, or a distance to an empty mask). Both files are written atomically.
    """
    write_json_atomic(summary, target)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metric_names = summary_metrics(summary)
    writer.writerow(["case", "class", "class_name", *metric_names, *VOLUMES])
    for case, per_class in summary["per_case"].items():
        for value, metrics in per_class.items():
            cells = [metrics.get(key, math.nan) for key in (*metric_names, *VOLUMES)]
            writer.writerow([case, value, (class_names or {}).get(value, value),
                             *("" if math.isnan(v) else f"{v:.6g}" for v in cells)])
    csv_path = per_case_csv_path(target)
    write_atomic(csv_path, lambda handle: handle.write(buffer.getvalue().encode("utf-8")))
    return csv_path


def summary_metrics(summary: dict) -> tuple[str, ...]:
    """The metric keys a summary holds (summaries written before conventions existed: the default's)."""
    return tuple(summary.get("metrics", METRICS))


def nanmean(values: list[float]) -> float:
    """Mean of the values that are not NaN (NaN when none is)."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def format_table(summary: dict, class_names: dict[str, str]) -> str:
    """A plain-text table of the mean metrics per class and overall."""
    metric_names = summary_metrics(summary)
    rows = [f"{'class':<16}" + "".join(f"{m:>10}" for m in metric_names)]
    for value, metrics in summary["mean_per_class"].items():
        rows.append(f"{class_names.get(value, value):<16}" + "".join(_cell(metrics[m]) for m in metric_names))
    rows.append(f"{'mean':<16}" + "".join(_cell(summary["mean"][m]) for m in metric_names))
    if "case_score" in summary:
        score = summary["case_score"]
        rows.append(f"{summary['convention']} case score (mean over {len(score['per_case'])} cases, "
                    f"{score['n_healthy']} without foreground): {score['mean']:.4f} ± {score['sd']:.4f}")
    return "\n".join(rows)


def _cell(value: float | None) -> str:
    return f"{'n/a':>10}" if value is None or math.isnan(value) else f"{value:>10.4f}"
