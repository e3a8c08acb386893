"""Ensembles of prediction folders: the saved probabilities of each case averaged, then the argmax.

Input folders are what `sss_predict --save-probabilities` (or `sss_train --save-probabilities`'s final
validation) writes: `<case>.nii.gz` and `<case>_probabilities.npz` (float16 (K+1, z, y, x) in the raw
image's array order). The label map of the first folder gives each case's geometry.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sss_auto.errors import SSSError
from sss_auto.inference.export import PROBABILITIES_SUFFIX as SUFFIX
from sss_auto.inference.export import write_probabilities
from sss_auto.io.nifti import read_header, write_image
from sss_auto.postprocessing.components import ClassRule, apply_rules


def cases_with_probabilities(folder: Path) -> list[str]:
    """Case ids in `folder` that have both a label map and saved probabilities."""
    return sorted(p.name[: -len(SUFFIX)] for p in Path(folder).glob(f"*{SUFFIX}")
                  if not p.name.startswith(".") and (Path(folder) / (p.name[: -len(SUFFIX)] + ".nii.gz")).is_file())


def common_cases(folders: list[Path]) -> list[str]:
    """The cases every folder holds probabilities for.

    Raises:
        SSSError: fewer than two folders, a folder without probabilities, or folders holding different cases
            (the first missing file is named).
    """
    if len(folders) < 2:
        raise SSSError("an ensemble needs at least two prediction folders")
    per_folder = {Path(f): set(cases_with_probabilities(f)) for f in folders}
    for folder, cases in per_folder.items():
        if not cases:
            raise SSSError(f"{folder}: no <case>{SUFFIX} beside the predictions; predict with --save-probabilities "
                           "(sss_train: --val-only --save-probabilities)")
    every = set.union(*per_folder.values())
    for folder, cases in per_folder.items():
        if missing := sorted(every - cases):
            raise SSSError(f"{folder / (missing[0] + SUFFIX)}: missing ({len(missing)} case(s) of the other folders "
                           "are not in this one); every folder must hold the same cases")
    return sorted(every)


def load_probabilities(path: Path) -> np.ndarray:
    """float32 (K+1, z, y, x) probabilities of one saved file.

    Raises:
        SSSError: unreadable, no `probabilities` array, or NaN/Inf in it.
    """
    try:
        with np.load(path) as saved:
            probabilities = saved["probabilities"].astype(np.float32)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise SSSError(f"{path}: cannot be read as saved probabilities ({err})") from err
    if not np.isfinite(probabilities).all():
        raise SSSError(f"{path}: holds NaN or infinite probabilities")
    return probabilities


def ensemble_case(case_id: str, folders: list[Path], output: Path, postprocessing: dict[int, ClassRule] | None = None,
                  save_probabilities: bool = False) -> np.ndarray:
    """Average one case's probabilities over `folders`, write `output/<case>.nii.gz` (and, with
    `save_probabilities`, the mean as `<case>_probabilities.npz`); returns the label map.

    Raises:
        SSSError: the folders' probabilities differ in shape, or do not match the first label map's shape.
    """
    geometry = read_header(Path(folders[0]) / f"{case_id}.nii.gz")
    total = None
    for folder in folders:
        path = Path(folder) / f"{case_id}{SUFFIX}"
        probabilities = load_probabilities(path)
        if probabilities.shape[1:] != tuple(geometry.shape) or (total is not None and probabilities.shape != total.shape):
            raise SSSError(f"{path}: shape {probabilities.shape} does not match {folders[0]}'s {case_id} "
                           f"({'image ' + str(geometry.shape) if total is None else total.shape})")
        total = probabilities if total is None else total + probabilities
    mean = total / len(folders)
    label = mean.argmax(0).astype(np.uint8)
    if postprocessing:
        label = apply_rules(label, postprocessing, geometry.spacing_mm)
    if save_probabilities:
        write_probabilities(Path(output) / f"{case_id}{SUFFIX}", mean, geometry.spacing_mm)
    write_image(label, geometry, Path(output) / f"{case_id}.nii.gz")
    return label


def ensemble_folders(folders: list[Path], output: Path, postprocessing: dict[int, ClassRule] | None = None,
                     progress: bool = True, save_probabilities: bool = False) -> list[str]:
    """Ensemble every case the folders share into `output`; returns the case ids written.

    Raises:
        SSSError: see `common_cases` and `ensemble_case`; `output` is one of the inputs.
    """
    output = Path(output)
    if any(output.resolve() == Path(f).resolve() for f in folders):
        raise SSSError(f"{output}: the ensemble's output folder must not be one of its inputs")
    cases = common_cases(folders)
    output.mkdir(parents=True, exist_ok=True)
    for case_id in tqdm(cases, desc="ensemble", unit="case", disable=None if progress else True):
        ensemble_case(case_id, folders, output, postprocessing, save_probabilities)
    return cases
