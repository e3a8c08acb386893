"""The report of one trained fold: fold_X/report/index.html with its settings, progress, validation and pictures.

Everything shown is read from the fold's own files (training_config.json, training_summary.json,
history.json, progress.png, validation/summary.json) and, for the overlays, the raw images and
labels; the cross-validation table appears once every fold of the run has finished.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from sss_auto.dataset.splits import ALL_FOLDS
from sss_auto.errors import SSSError
from sss_auto.evaluation.evaluate import nanmean
from sss_auto.evaluation.summarize import summarize_run
from sss_auto.io.atomic import copy_atomic, read_json
from sss_auto.report.overlays import metric_cell, metrics_table, write_index, write_overlay
from sss_auto.training.progress import HISTORY_FILE

REPORT_FOLDER = "report"
PROMPT_KEYS = ("prompt_recall", "prompt_precision", "prompt_box_iou")


def case_ranking(summary: dict) -> list[tuple[str, float]]:
    """(case, mean Dice over its classes) of every validation case with a defined Dice, worst first."""
    scores = [(case, nanmean([v["dice"] if v["dice"] is not None else math.nan for v in per_class.values()]))
              for case, per_class in summary["per_case"].items()]
    return sorted(((c, d) for c, d in scores if not math.isnan(d)), key=lambda item: (item[1], item[0]))


def pick_cases(ranking: list[tuple[str, float]]) -> dict[str, tuple[str, float]]:
    """The best, median and worst cases of a ranking (fewer entries when cases coincide)."""
    if not ranking:
        return {}
    chosen = {"best": ranking[-1], "worst": ranking[0], "median": ranking[(len(ranking) - 1) // 2]}  # median last: it may be either
    seen, out = set(), {}
    for role, entry in chosen.items():
        if entry[0] not in seen:
            seen.add(entry[0])
            out[role] = entry
    return out


def last_prompt_quality(history: dict[str, list[float | None]], class_values: list[str]) -> dict[str, dict[str, float]]:
    """Per class, the last logged value of each PCSW prompt-quality number (recall, precision, box IoU)."""
    out = {}
    for k in class_values:
        row = {}
        for key in PROMPT_KEYS:
            values = [v for v in history.get(f"{key}_{k}", []) if v is not None and not math.isnan(v)]
            if values:
                row[key] = values[-1]
        if row:
            out[k] = row
    return out


def _table(rows: list[tuple[str, str]], table_id: str) -> str:
    return (f'<table id="{table_id}">' + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
            + "</table>")


def settings_rows(config: dict, summary: dict) -> list[tuple[str, str]]:
    """The run's settings as (name, value): what was trained, on what plan, for how long."""
    plan = config["plans"]["configurations"][config["configuration"]] if "plans" in config else config["plan"]  # older runs
    ablation = config["ablation"]
    training = plan["training"]
    parts = [name for name, on in (("DFE", ablation["use_dfe"]), ("PCSW", ablation["use_pcsw"]),
                                   ("refinement", ablation["refine"])) if on]
    method = "supervised only" if ablation["supervised_only"] else "weak-to-strong" + (" + " + " + ".join(parts) if parts else "")
    return [("dataset / configuration / fold", f"{config['dataset']} / {config['configuration']} / {config['fold']}"),
            ("method", method),
            ("SAM-2", f"{plan['sam2_variant']}; {summary.get('sam2_note', 'n/a')}"),
            ("patch, batch (labeled + unlabeled)", f"{plan['patch_size']}, {plan['batch_size_labeled']} + {plan['batch_size_unlabeled']}"),
            ("learning rate, unlabeled weight", f"{training['learning_rate']}, {training['unlabeled_weight']}"),
            ("epochs, iterations, wall time", f"{summary.get('epochs')}, {summary.get('iterations')}, {summary.get('duration_s')} s"),
            ("seed, device", f"{config['seed']}, {config['device']}")]


def write_fold_report(fold_folder: Path, raw_folder: Path) -> Path:
    """Write fold_folder/report/index.html (and its pictures); returns the page's path.

    Raises:
        SSSError: the fold has not finished its validation, or a file it needs is missing.
    """
    fold_folder, raw_folder = Path(fold_folder), Path(raw_folder)
    summary_path = fold_folder / "validation" / "summary.json"
    if not summary_path.is_file():
        raise SSSError(f"{summary_path}: the fold has no final validation yet (finish training, or sss_train ... --val-only)")
    run_folder = fold_folder.parent
    dataset = read_json(run_folder / "dataset.json")
    names = {v: k for k, v in dataset["labels"].items()}
    summary = read_json(summary_path)
    config = read_json(fold_folder / "training_config.json")
    training_summary = read_json(fold_folder / "training_summary.json") if (fold_folder / "training_summary.json").is_file() else {}
    report = fold_folder / REPORT_FOLDER
    report.mkdir(exist_ok=True)

    try:
        settings = settings_rows(config, training_summary)
    except (KeyError, TypeError) as err:
        raise SSSError(f"{fold_folder / 'training_config.json'}: has no {err} (written by another sss-auto version?)") from err
    sections = [f"<h2>Settings</h2>{_table(settings, 'settings')}"]
    if "coarse" in summary:
        sections.append("<h2>Coarse (pass 1) vs fused (pass 2) Dice</h2>" + _coarse_vs_fused(summary, names))
    history_path = fold_folder / HISTORY_FILE
    quality = last_prompt_quality(read_json(history_path), [str(v) for v in names if v > 0]) if history_path.is_file() else {}
    if quality:
        sections.append("<h2>PCSW prompt quality (last bank refresh, labeled validation volumes)</h2>"
                        + _prompt_table(quality, names))
    cv = _cross_validation(run_folder, names)
    if cv:
        sections.append(cv)
    pictures = []
    if (fold_folder / "progress.png").is_file():
        copy_atomic(fold_folder / "progress.png", report / "progress.png")
        pictures.append("progress.png")
    chosen = pick_cases(case_ranking(summary))
    ending = dataset.get("file_ending", ".nii.gz")
    for role, (case_id, dice) in chosen.items():
        image = raw_folder / "imagesTr" / f"{case_id}_0000{ending}"
        reference = raw_folder / "labelsTr" / f"{case_id}{ending}"
        for path in (image, reference):
            if not path.is_file():
                raise SSSError(f"{path}: needed for the {role} case's overlay, not found")
        name = f"{role}_{case_id}.png"
        write_overlay(image, reference, fold_folder / "validation" / f"{case_id}.nii.gz", names, report / name)
        pictures.append(name)
    if chosen:
        sections.append("<h2>Validation cases shown</h2>" + _table(
            [(role, f"{case_id}: mean Dice {dice:.3f}") for role, (case_id, dice) in chosen.items()], "cases"))
    title = f"sss-auto report: {run_folder.name} fold {config['fold']}"
    return write_index(report, summary, names, pictures, title, "".join(sections), cases_label="validation")


def _coarse_vs_fused(summary: dict, names: dict[int, str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(names.get(int(k), k))}</td><td>{metric_cell(summary['coarse']['mean_per_class'][k]['dice'])}"
                   f"</td><td>{metric_cell(v['dice'])}</td></tr>" for k, v in summary["mean_per_class"].items())
    return ('<table id="coarse_vs_fused"><tr><th>class</th><th>coarse</th><th>fused</th></tr>' + rows
            + f"<tr><th>mean</th><th>{metric_cell(summary['coarse']['mean']['dice'])}</th>"
              f"<th>{metric_cell(summary['mean']['dice'])}</th></tr></table>")


def _prompt_table(quality: dict[str, dict[str, float]], names: dict[int, str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(names.get(int(k), k))}</td>" + "".join(f"<td>{metric_cell(v.get(key))}</td>" for key in PROMPT_KEYS)
                   + "</tr>" for k, v in quality.items())
    return '<table id="prompts"><tr><th>class</th><th>recall</th><th>precision</th><th>box IoU</th></tr>' + rows + "</table>"


def _cross_validation(run_folder: Path, names: dict[int, str]) -> str:
    if not all((run_folder / f"fold_{f}" / "validation" / "summary.json").is_file() for f in ALL_FOLDS):
        return ""
    cv = summarize_run(run_folder)
    return (f"<h2>Cross-validation (folds {', '.join(cv['folds'])}, {cv['n_cases']} cases)</h2>"
            + metrics_table(cv, names, table_id="cross_validation"))
