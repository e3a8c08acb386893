"""`sss_demo`: the whole product on the synthetic dataset, with pictures at the end.

make demo data → fingerprint, plan, preprocess → train fold 0 (short schedule) → predict the test
cases → evaluate → overlay PNGs + index.html. Each stage reuses finished work, so running the
command again continues where it stopped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from sss_auto.dataset.demo import DemoSpec, make_demo_dataset
from sss_auto.dataset.raw import load_dataset
from sss_auto.evaluation.evaluate import evaluate_folders, write_summary
from sss_auto.inference.inputs import find_input_cases
from sss_auto.inference.models import choose_run, find_trained_runs, load_run
from sss_auto.inference.predictor import predict_cases
from sss_auto.io.atomic import copy_atomic
from sss_auto.io.checkpoint import FINAL, LATEST
from sss_auto.report.headline import headline_html, load_headline
from sss_auto.report.overlays import write_index, write_overlay
from sss_auto.stages import fingerprint_stage, plan_stage, preprocess_stage, preprocessed_folder
from sss_auto.training.distributed import DistInfo
from sss_auto.training.options import make_train_config
from sss_auto.training.run import fold_folder, train_fold

logger = logging.getLogger(__name__)
DEMO_NAME = "Dataset900_DemoBHSD"


@dataclass(frozen=True)
class DemoSchedule:
    """The short training of the demo (about 2 minutes on a 2-core CPU with the test SAM-2).

    Most of the budget goes to supervised warm-up: a randomly initialised encoder needs a few hundred
    labeled iterations before its pseudo labels and PCSW prompts are worth learning from.
    """

    epochs: int = 10
    iterations_per_epoch: int = 60
    warmup_epochs: int = 7
    batch_size: int = 4
    learning_rate: float = 1e-3
    pcsw_refresh_epochs: int = 2


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote what a person wants to see."""

    folder: Path
    fold_folder: Path
    predictions: Path
    report: Path
    summary: dict
    class_names: dict[str, str]  # label value (as in summary.json) -> name
    headline: dict | None = None  # the semi-supervised benchmark's table (sss_auto/report/headline.py)


def use_demo_roots(folder: Path) -> None:
    """Point SSS_raw / SSS_preprocessed / SSS_results into `folder` (this process only)."""
    for name in ("SSS_raw", "SSS_preprocessed", "SSS_results"):
        os.environ[name] = str(folder / name)


def run_demo(folder: Path, schedule: DemoSchedule = DemoSchedule(), device: str = "cpu", num_workers: int | None = None,
             progress: bool = True) -> DemoResult:
    """Run every stage in `folder`; finished stages are reused."""
    folder = Path(folder).resolve()
    use_demo_roots(folder)
    raw = folder / "SSS_raw" / DEMO_NAME
    if not (raw / "dataset.json").is_file():
        make_demo_dataset(raw, DemoSpec())
        logger.info("demo dataset written to %s", raw)
    dataset = load_dataset(raw)
    fingerprint = fingerprint_stage(dataset, 2, progress=progress)
    if not (preprocessed_folder(dataset) / "plans.json").is_file():
        plan_stage(dataset, fingerprint)  # the planner's choice: without weights the from-scratch plan
    preprocess_stage(dataset, ["2d"], 2, progress)

    config = make_train_config(
        dataset, "2d", "0", overrides={"num_epochs": schedule.epochs, "iterations_per_epoch": schedule.iterations_per_epoch,
                                       "warmup_epochs": schedule.warmup_epochs, "learning_rate": schedule.learning_rate,
                                       "pcsw_refresh_epochs": schedule.pcsw_refresh_epochs},
        batch_size=schedule.batch_size, device=device, validation_tta=False,
        **({} if num_workers is None else {"num_workers": num_workers}))
    fold = fold_folder(dataset.name, config.ablation.run_name(), "2d", "0")
    if (fold / FINAL).is_file():
        logger.info("the demo model is already trained (%s)", fold)
    else:
        train_fold(dataset, config, DistInfo(0, 1, device), resume=(fold / LATEST).is_file(), show_progress=progress)

    results = folder / "SSS_results"
    loaded = load_run(choose_run(find_trained_runs(results), dataset.name, "2d", config.ablation.run_name(), results),
                      None, "final", device)
    predictions = folder / "predictions"
    cases, problems = find_input_cases(raw / "imagesTs", len(dataset.channel_names))
    for problem in problems:
        logger.warning("%s", problem.message)
    settings = replace(config.inference, tta=True, device=device, batch_size=2 * schedule.batch_size)
    predict_cases(cases, loaded, predictions, settings, resume=True, num_processes=1, progress=progress)
    classes = sorted(v for v in dataset.labels.values() if v > 0)
    summary = evaluate_folders(raw / "labelsTs", predictions, classes, progress)
    write_summary(summary, predictions / "summary.json", {str(v): k for k, v in dataset.labels.items()})

    report = folder / "report"
    report.mkdir(exist_ok=True)
    names = {v: k for k, v in dataset.labels.items()}
    pictures = []
    for case in cases:
        name = f"{case.case_id}.png"
        write_overlay(case.images[0], raw / "labelsTs" / f"{case.case_id}.nii.gz", predictions / f"{case.case_id}.nii.gz",
                      names, report / name)
        pictures.append(name)
    if (fold / "progress.png").is_file():
        copy_atomic(fold / "progress.png", report / "progress.png")
        pictures.append("progress.png")
    headline = load_headline()
    index = write_index(report, summary, names, pictures, "sss-auto demo: test cases",
                        headline_html(headline) if headline is not None else "")
    return DemoResult(folder, fold, predictions, index, summary, {str(v): k for k, v in dataset.labels.items()}, headline)
