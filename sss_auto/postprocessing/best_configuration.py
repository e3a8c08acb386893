"""sss_find_best_configuration's work: rank the finished cross-validations, choose postprocessing, write instructions."""

from __future__ import annotations

import math
from pathlib import Path

from planners.fingerprint import load_fingerprint
from sss_auto.errors import SSSError
from sss_auto.evaluation.evaluate import nanmean
from sss_auto.evaluation.summarize import class_names
from sss_auto.io.atomic import write_atomic, write_json_atomic
from sss_auto.postprocessing.determine import FILE_NAME, candidate_rules, determine, save_postprocessing
from sss_auto.training.splits import ALL_FOLDS


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
    fingerprint = load_fingerprint(run_folder / "fingerprint.json")
    classes = sorted(int(k) for k in class_names(run_folder) if int(k) > 0)
    result = determine(validation_pairs(run_folder, reference_folder, folds),
                       {k: candidate_rules(k, fingerprint) for k in classes}, progress)
    save_postprocessing(result, run_folder / FILE_NAME, {"run": run_folder.name, "folds": list(folds)})
    before = {value: entry["dice_unchanged"] for value, entry in result["classes"].items()}
    after = {value: entry["candidates"].get(entry["chosen"], entry["dice_unchanged"])
             for value, entry in result["classes"].items()}
    return {"run": run_folder.name, "folder": str(run_folder), "n_cases": result["n_cases"],
            "dice": nanmean(list(before.values())), "dice_per_class": before,
            "dice_postprocessed": nanmean(list(after.values())), "dice_per_class_postprocessed": after,
            "postprocessing": {value: entry["chosen"] for value, entry in result["classes"].items()}}


def write_instructions(dataset_results: Path, dataset: str, ranked: list[dict], folds: tuple[str, ...]) -> Path:
    """inference_information.json (every run's numbers) and inference_instructions.txt (the command for the best)."""
    best = ranked[0]
    run, _, configuration = best["run"].rpartition("__")
    write_json_atomic({"best": best["run"], "folds": list(folds), "runs": ranked}, dataset_results / "inference_information.json")
    command = (f"sss_predict -i INPUT_FOLDER -o OUTPUT_FOLDER -d {dataset} -c {configuration} --run {run} "
               f"-f {' '.join(folds)}")
    text = (f"Best cross-validated model of {dataset}: {best['run']} (folds {', '.join(folds)}), mean Dice "
            f"{best['dice']:.4f}, with postprocessing {best['dice_postprocessed']:.4f}.\n\n"
            f"Predict with:\n{command}\n\n"
            f"sss_predict applies {Path(best['folder']) / FILE_NAME} (per class: "
            + "; ".join(f"{k}: {v}" for k, v in best["postprocessing"].items())
            + "); --disable-postprocessing leaves it out.\n")
    path = dataset_results / "inference_instructions.txt"
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
    return path


def rank(evaluated: list[dict]) -> list[dict]:
    """Runs by mean Dice after postprocessing, best first (NaN last)."""
    return sorted(evaluated, key=lambda r: 1.0 if math.isnan(r["dice_postprocessed"]) else -r["dice_postprocessed"])
