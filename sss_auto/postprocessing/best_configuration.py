"""sss_find_best_configuration's work: rank the finished cross-validations, choose postprocessing, write instructions."""

from __future__ import annotations

import math
import shutil
from itertools import combinations
from pathlib import Path

from planners.fingerprint import load_fingerprint
from sss_auto.dataset.splits import ALL_FOLDS
from sss_auto.errors import SSSError
from sss_auto.evaluation.evaluate import nanmean
from sss_auto.evaluation.summarize import class_names
from sss_auto.inference.ensemble import ensemble_folders
from sss_auto.inference.export import probabilities_path
from sss_auto.io.atomic import write_atomic, write_json_atomic
from sss_auto.postprocessing.determine import FILE_NAME, candidate_rules, determine, save_postprocessing

ENSEMBLES = "ensembles"  # dataset_results/ensembles/ensemble___A___B/: cross-validated ensembles


def cross_validated_runs(dataset_results: Path, configurations: list[str] | None, runs: list[str] | None,
                         folds: tuple[str, ...] = ALL_FOLDS) -> tuple[list[Path], list[str]]:
    """Run folders whose every fold in `folds` has finished its validation, and why the others were left out."""
    chosen, skipped = [], []
    for folder in sorted(p for p in Path(dataset_results).iterdir() if "__" in p.name and (p / "plans.json").is_file()):
        run, _, configuration = folder.name.rpartition("__")
        if (configurations and configuration not in configurations) or (runs and run not in runs):
            continue
        missing = [f for f in folds if not (folder / f"fold_{f}" / "validation" / "summary.json").is_file()]
        if missing:
            skipped.append(f"{folder.name}: fold(s) {', '.join(missing)} not finished")
        else:
            chosen.append(folder)
    return chosen, skipped


def validation_pairs(run_folder: Path, reference_folder: Path, folds: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(prediction, reference) of every fold's exported validation case."""
    pairs = []
    for fold in folds:
        for prediction in sorted((run_folder / f"fold_{fold}" / "validation").glob("*.nii.gz")):
            reference = reference_folder / prediction.name
            if not reference.is_file():
                raise SSSError(f"{prediction}: no reference label {reference}")
            pairs.append((prediction, reference))
    return pairs


def evaluate_run(run_folder: Path, reference_folder: Path, folds: tuple[str, ...], progress: bool = True) -> dict:
    """Cross-validation Dice of one run over `folds`, without and with its postprocessing (written to postprocessing.json)."""
    entry = evaluate_predictions(run_folder.name, run_folder, validation_pairs(run_folder, reference_folder, folds),
                                 run_folder, {"run": run_folder.name, "folds": list(folds)}, progress)
    return {**entry, "kind": "run"}


def evaluate_predictions(name: str, folder: Path, pairs: list[tuple[Path, Path]], run_folder: Path,
                         determined_on: dict, progress: bool = True) -> dict:
    """Dice per class of (prediction, reference) pairs without and with the postprocessing chosen on them.

    The choice goes to folder/postprocessing.json; the candidates come from `run_folder`'s fingerprint.
    """
    fingerprint = load_fingerprint(run_folder / "fingerprint.json")
    classes = sorted(int(k) for k in class_names(run_folder) if int(k) > 0)
    result = determine(pairs, {k: candidate_rules(k, fingerprint) for k in classes}, progress)
    save_postprocessing(result, folder / FILE_NAME, determined_on)
    before = {value: entry["dice_unchanged"] for value, entry in result["classes"].items()}
    after = {value: entry["candidates"].get(entry["chosen"], entry["dice_unchanged"])
             for value, entry in result["classes"].items()}
    return {"run": name, "folder": str(folder), "n_cases": result["n_cases"],
            "dice": nanmean(list(before.values())), "dice_per_class": before,
            "dice_postprocessed": nanmean(list(after.values())), "dice_per_class_postprocessed": after,
            "postprocessing": {value: entry["chosen"] for value, entry in result["classes"].items()}}


def missing_probabilities(run_folder: Path, folds: tuple[str, ...]) -> list[Path]:
    """Validation predictions of `folds` that have no saved probabilities (sss_train --save-probabilities)."""
    return [p for fold in folds for p in sorted((run_folder / f"fold_{fold}" / "validation").glob("*.nii.gz"))
            if not probabilities_path(p).is_file()]


def evaluate_ensembles(dataset_results: Path, run_folders: list[Path], reference_folder: Path, folds: tuple[str, ...],
                       progress: bool = True) -> tuple[list[dict], list[str]]:
    """Every pair of runs ensembled on its cross-validation probabilities and evaluated like a run.

    Each pair's ensembled validation cases go to dataset_results/ensembles/ensemble___A___B/ (with
    its postprocessing.json). Returns the entries and why runs or pairs were left out.
    """
    ready, skipped = [], []
    for folder in run_folders:
        if missing := missing_probabilities(folder, folds):
            skipped.append(f"{folder.name}: not ensembled, {len(missing)} validation case(s) without probabilities "
                           f"(e.g. {missing[0]}); add them with sss_train ... --val-only --save-probabilities")
        else:
            ready.append(folder)
    entries = []
    for first, second in combinations(ready, 2):
        if class_names(first) != class_names(second):
            skipped.append(f"ensemble of {first.name} and {second.name}: their labels differ")
            continue
        folder = dataset_results / ENSEMBLES / f"ensemble___{first.name}___{second.name}"
        shutil.rmtree(folder, ignore_errors=True)  # made again from the current validations
        for fold in folds:
            ensemble_folders([r / f"fold_{fold}" / "validation" for r in (first, second)], folder, progress=False)
        pairs = [(p, reference_folder / p.name) for p in sorted(folder.glob("*.nii.gz"))]
        entry = evaluate_predictions(folder.name, folder, pairs, first,
                                     {"ensemble": [first.name, second.name], "folds": list(folds)}, progress)
        entries.append({**entry, "kind": "ensemble", "members": [first.name, second.name]})
    return entries, skipped


def write_instructions(dataset_results: Path, dataset: str, ranked: list[dict], folds: tuple[str, ...]) -> Path:
    """inference_information.json (every run's numbers) and inference_instructions.txt (the commands for the best)."""
    best = ranked[0]
    write_json_atomic({"best": best["run"], "folds": list(folds), "runs": ranked}, dataset_results / "inference_information.json")
    rules = "; ".join(f"{k}: {v}" for k, v in best["postprocessing"].items())
    if best["kind"] == "ensemble":
        outputs = [f"OUTPUT_FOLDER_{i + 1}" for i in range(len(best["members"]))]
        commands = [_predict_command(dataset, member, folds, out) + " --save-probabilities --disable-postprocessing"
                    for member, out in zip(best["members"], outputs)]
        commands.append(f"sss_ensemble -i {' '.join(outputs)} -o OUTPUT_FOLDER "
                        f"--postprocessing {Path(best['folder']) / FILE_NAME}")
        applied = f"sss_ensemble applies {Path(best['folder']) / FILE_NAME} (per class: {rules}); leave --postprocessing out to skip it.\n"
        what = f"ensemble of {' and '.join(best['members'])}"
    else:
        commands = [_predict_command(dataset, best["run"], folds, "OUTPUT_FOLDER")]
        applied = (f"sss_predict applies {Path(best['folder']) / FILE_NAME} (per class: {rules}); "
                   "--disable-postprocessing leaves it out.\n")
        what = best["run"]
    text = (f"Best cross-validated model of {dataset}: {what} (folds {', '.join(folds)}), mean Dice "
            f"{best['dice']:.4f}, with postprocessing {best['dice_postprocessed']:.4f}.\n\n"
            f"Predict with:\n" + "\n".join(commands) + "\n\n" + applied)
    path = dataset_results / "inference_instructions.txt"
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
    return path


def _predict_command(dataset: str, run_folder_name: str, folds: tuple[str, ...], output: str) -> str:
    run, _, configuration = run_folder_name.rpartition("__")
    return f"sss_predict -i INPUT_FOLDER -o {output} -d {dataset} -c {configuration} --run {run} -f {' '.join(folds)}"


def rank(evaluated: list[dict]) -> list[dict]:
    """Runs by mean Dice after postprocessing, best first (NaN last)."""
    return sorted(evaluated, key=lambda r: 1.0 if math.isnan(r["dice_postprocessed"]) else -r["dice_postprocessed"])
