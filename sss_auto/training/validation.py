"""Validation of a fold: Dice per class with the same two-pass inference the predictor uses.

Every epoch: a cheaper proxy — no TTA, on the cached grid. At the end: the full inference (with
TTA), exported to the original geometry, written as NIfTI and scored against the raw labels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from planners.plans import Plans
from sss_auto.data.cache import CaseCache
from sss_auto.evaluation.evaluate import evaluate_folders, nanmean, write_summary
from sss_auto.inference.export import export_prediction
from sss_auto.inference.settings import InferenceSettings
from sss_auto.inference.two_pass import predict_volume
from sss_auto.method.reliability import COUNT_ROWS, PseudoLabelRule, reliability_counts, reliability_metrics
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.pcsw import ClassConstraint


def validate_cached(models: list[SSSNet], cache: CaseCache, case_ids: list[str], settings: InferenceSettings,
                    constraints: dict[int, ClassConstraint], rule: PseudoLabelRule | None = None) -> dict[str, float]:
    """Per-class Dice over the cases (voxels pooled per class across cases) on the cached grid.

    Returns `dice_k`/`dice_mean` of the fused prediction (pass 2, what the predictor outputs) and
    `dice_coarse_k`/`dice_coarse_mean` of pass 1, so refinement shows what it adds. With a pseudo-label
    `rule`, also `found_k`/`away_k`: what pseudo labels taken from the fused prediction by that rule
    would teach about each class (sss_auto/method/reliability.py).
    """
    num_classes = models[0].config.num_classes
    pooled = {name: (np.zeros(num_classes), np.zeros(num_classes)) for name in ("dice", "dice_coarse")}
    counts = np.zeros((len(COUNT_ROWS), num_classes), np.int64)
    for case_id in case_ids:
        volume = cache.load(case_id)
        prediction = predict_volume(models, np.asarray(volume.data), volume.properties.spacing_after_resampling_mm,
                                    settings, constraints)
        reference = np.asarray(volume.seg)
        if rule is not None:
            counts += reliability_counts(prediction.probabilities, reference, rule)
        for name, probabilities in (("dice", prediction.probabilities), ("dice_coarse", prediction.coarse)):
            labels = probabilities.argmax(0)
            intersection, size_sum = pooled[name]
            for k in range(1, num_classes):
                p, r = labels == k, reference == k
                intersection[k] += np.logical_and(p, r).sum()
                size_sum[k] += p.sum() + r.sum()
    out = {}
    for name, (intersection, size_sum) in pooled.items():
        per_class = {k: (2 * intersection[k] / size_sum[k]) if size_sum[k] else math.nan for k in range(1, num_classes)}
        out.update({f"{name}_{k}": float(v) for k, v in per_class.items()})
        out[f"{name}_mean"] = nanmean(list(per_class.values()))
    return out | (reliability_metrics(counts) if rule is not None else {})


def export_and_score(models: list[SSSNet], cache: CaseCache, case_ids: list[str], reference_folder: Path,
                     plans: Plans, settings: InferenceSettings, constraints: dict[int, ClassConstraint],
                     folder: Path, progress: bool = True, save_probabilities: bool = False) -> dict:
    """Predict each case, write `<case>.nii.gz` in its original geometry, and evaluate it like sss_evaluate.

    The pass-1 (coarse) predictions go to folder/coarse and are scored too (summary key "coarse").
    With `save_probabilities` the fused prediction's `<case>_probabilities.npz` goes beside it.
    Returns (and writes as folder/summary.json) the evaluation summary of the fused predictions.
    """
    for case_id in case_ids:
        volume = cache.load(case_id)
        prediction = predict_volume(models, np.asarray(volume.data), volume.properties.spacing_after_resampling_mm,
                                    settings, constraints)
        export_prediction(prediction.probabilities, volume.properties, plans, folder / f"{case_id}.nii.gz", save_probabilities)
        export_prediction(prediction.coarse, volume.properties, plans, folder / "coarse" / f"{case_id}.nii.gz")
    classes = [v for v in sorted(plans.labels.values()) if v > 0]
    names = {str(v): k for k, v in plans.labels.items()}
    coarse = evaluate_folders(reference_folder, folder / "coarse", classes, progress)
    write_summary(coarse, folder / "coarse" / "summary.json", names)
    summary = evaluate_folders(reference_folder, folder, classes, progress)
    summary["coarse"] = {"mean": coarse["mean"], "mean_per_class": coarse["mean_per_class"]}
    write_summary(summary, folder / "summary.json", names)
    return summary
