"""Cross-validation summary: pool the validation cases of every fold of a run and rank the runs."""

from __future__ import annotations

import math
from pathlib import Path

from sss_auto.errors import SSSError
from sss_auto.evaluation.evaluate import METRICS, nanmean
from sss_auto.io.atomic import read_json


def summarize_run(run_folder: Path) -> dict:
    """Per-class means over all validation cases of the run's finished folds (from fold_*/validation/summary.json).

    Raises:
        SSSError: no fold of the run has a validation summary yet.
    """
    per_case, folds = {}, []
    for summary_path in sorted(Path(run_folder).glob("fold_*/validation/summary.json")):
        fold = summary_path.parents[1].name[len("fold_"):]
        folds.append(fold)
        for case_id, metrics in read_json(summary_path)["per_case"].items():
            per_case[case_id] = {k: {m: (math.nan if v[m] is None else v[m]) for m in METRICS} for k, v in metrics.items()}
    if not per_case:
        raise SSSError(f"{run_folder}: no fold has finished its validation (fold_*/validation/summary.json)")
    classes = sorted({k for case in per_case.values() for k in case}, key=int)
    mean_per_class = {k: {m: nanmean([c[k][m] for c in per_case.values() if k in c]) for m in METRICS} for k in classes}
    mean = {m: nanmean([v[m] for v in mean_per_class.values()]) for m in METRICS}
    return {"run": Path(run_folder).name, "folds": folds, "n_cases": len(per_case), "mean": mean,
            "mean_per_class": mean_per_class}


def best_run(summaries: list[dict]) -> dict:
    """The summary with the highest mean Dice (NaN ranks last)."""
    return max(summaries, key=lambda s: -1.0 if math.isnan(s["mean"]["dice"]) else s["mean"]["dice"])


def class_names(run_folder: Path) -> dict[str, str]:
    """Class value (as str) -> name, from the dataset.json copied into a run folder."""
    return {str(v): k for k, v in read_json(Path(run_folder) / "dataset.json")["labels"].items()}
