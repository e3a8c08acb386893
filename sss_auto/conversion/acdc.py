"""ACDC (CREATIS release) → DatasetXXX_ACDC, with the standard semi-supervised protocol.

Release layout: training/patientXXX/{Info.cfg, patientXXX_frameNN.nii.gz, patientXXX_frameNN_gt.nii.gz,
patientXXX_4d.nii.gz} (and testing/, not used by the protocol). Labels 1 RV, 2 MYO, 3 LV.

Standard split (SSL4MIS / UniMatch; results comparable with the literature): 20 test and 10
validation patients (below), the other 70 for training. The labeled patients of the 3- and 7-case
settings are the first 3 / 7 of LABELED_ORDER. Case ids are `patientXXX_ED` and `patientXXX_ES`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sss_auto.conversion.archives import extract_zip
from sss_auto.conversion.pairs import check_labeled_pair
from sss_auto.errors import DatasetError
from sss_auto.io.atomic import copy_atomic, read_json, write_json_atomic
from sss_auto.io.nifti import read_image_4d, write_image

logger = logging.getLogger(__name__)
LABELS = {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
ENDING = ".nii.gz"
VAL = ("002", "019", "028", "030", "039", "045", "078", "082", "085", "087")
TEST = ("001", "007", "008", "011", "013", "022", "024", "033", "052", "059", "064", "065", "066", "068", "075", "080",
        "081", "083", "084", "093")
LABELED_ORDER = ("099", "038", "050", "100", "058", "021", "049")  # head of SSL4MIS train_slices.list


@dataclass(frozen=True)
class AcdcSplit:
    """Patients (e.g. "patient099") per role."""

    labeled: tuple[str, ...]
    unlabeled: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def standard_split(patients: list[str], labeled_cases: int) -> AcdcSplit:
    """The SSL4MIS split of patient001–100 with the first `labeled_cases` labeled training patients.

    Beyond the 7 patients whose order is known, further labeled patients are taken in ascending order
    (such settings are not comparable with published numbers).
    """
    names = {f"patient{n}" for n in VAL + TEST}
    train = [p for p in sorted(patients) if p not in names]
    if not 1 <= labeled_cases <= len(train):
        raise DatasetError(f"--labeled-cases {labeled_cases}: between 1 and {len(train)} training patients are available")
    head = [f"patient{n}" for n in LABELED_ORDER if f"patient{n}" in train]
    order = head + [p for p in train if p not in head]
    if labeled_cases > len(LABELED_ORDER):
        logger.warning("%d labeled patients: only the 3- and 7-case settings follow the published patient lists", labeled_cases)
    present = set(patients)
    return AcdcSplit(tuple(sorted(order[:labeled_cases])), tuple(sorted(order[labeled_cases:])),
                     tuple(sorted(f"patient{n}" for n in VAL if f"patient{n}" in present)),
                     tuple(sorted(f"patient{n}" for n in TEST if f"patient{n}" in present)))


def custom_split(path: Path, patients: list[str]) -> AcdcSplit:
    """A split file: {"labeled": [...], "unlabeled": [...], "val": [...], "test": [...]} of patient names."""
    data = read_json(path)
    if not isinstance(data, dict) or set(data) != {"labeled", "unlabeled", "val", "test"}:
        raise DatasetError(f"{path}: expected the keys labeled, unlabeled, val, test (lists of patient names)")
    unknown = sorted(set().union(*map(set, data.values())) - set(patients))
    if unknown:
        raise DatasetError(f"{path}: patients not in the release: {', '.join(unknown[:5])}")
    return AcdcSplit(*(tuple(sorted(data[k])) for k in ("labeled", "unlabeled", "val", "test")))


def parse_info(path: Path) -> dict[str, str]:
    """Info.cfg: `Key: value` lines."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing (every patient folder has an Info.cfg with ED and ES)")
    info = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    for key in ("ED", "ES"):
        if not info.get(key, "").isdigit():
            raise DatasetError(f"{path}: no integer {key} frame")
    return info


def find_training_folder(source: Path, scratch: Path) -> Path:
    """The `training` folder of the release (a zip is extracted into `scratch`)."""
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: not found")
    root = extract_zip(source, scratch) if source.is_file() else source
    for candidate in [root / "training", *root.rglob("training")]:
        if candidate.is_dir() and any(candidate.glob("patient*")):
            return candidate
    raise DatasetError(f"{source}: no training/patientXXX folders (the CREATIS ACDC release)")


def _frames(folder: Path, labels_required: bool = True) -> dict[str, tuple[Path, Path | None, int]]:
    """{"ED": (image, label, frame number), "ES": ...} of one patient, checked (label None when absent and not required)."""
    info = parse_info(folder / "Info.cfg")
    out = {}
    for phase in ("ED", "ES"):
        frame = int(info[phase])
        image = folder / f"{folder.name}_frame{frame:02d}{ENDING}"
        label = folder / f"{folder.name}_frame{frame:02d}_gt{ENDING}"
        if not labels_required and not label.is_file() and image.is_file():
            out[phase] = (image, None, frame)
            continue
        for path in (image, label):
            if not path.is_file():
                raise DatasetError(f"{path}: missing ({phase} is frame {frame} in {folder / 'Info.cfg'})")
        check_labeled_pair(image, label, LABELS)
        out[phase] = (image, label, frame)
    return out


def convert_acdc(source: Path, target: Path, labeled_cases: int = 7, cine_unlabeled: bool = False,
                 split_file: Path | None = None, include_testing: bool = False, progress: bool = True) -> dict:
    """Write the raw dataset folder `target`; returns counts per subset.

    Labeled and validation patients' ED/ES frames → imagesTr/labelsTr (the validation patients form
    fold 0's validation set, written to `splits_final.json` in `target` for sss_train); the other
    training patients' ED/ES → imagesUnlabeled; test patients → imagesTs/labelsTs. With
    `cine_unlabeled`, every other cine frame (besides ED/ES) of the training patients is added as unlabeled.
    With `include_testing`, the release's testing/ patients (101–150, not part of the protocol) are
    added to imagesTs (with labelsTs where the release has ground truth).
    """
    target = Path(target)
    with tempfile.TemporaryDirectory(prefix=".acdc_") as scratch:
        training = find_training_folder(source, Path(scratch))
        patients = sorted(p.name for p in training.glob("patient*") if p.is_dir())
        split = custom_split(split_file, patients) if split_file else standard_split(patients, labeled_cases)
        jobs = ([(p, "imagesTr", "labelsTr") for p in split.labeled + split.val] + [(p, "imagesTs", "labelsTs") for p in split.test]
                + [(p, "imagesUnlabeled", None) for p in split.unlabeled])
        cine = 0
        for patient, image_folder, label_folder in tqdm(jobs, desc="ACDC", unit="patient", disable=None if progress else True):
            frames = _frames(training / patient)
            for phase, (image, label, _) in frames.items():
                copy_atomic(image, target / image_folder / f"{patient}_{phase}_0000{ENDING}")
                if label_folder:
                    copy_atomic(label, target / label_folder / f"{patient}_{phase}{ENDING}")
            if cine_unlabeled and patient not in split.val + split.test:
                cine += _write_cine(training / patient / f"{patient}_4d{ENDING}", {f for _, _, f in frames.values()},
                                    target / "imagesUnlabeled", patient)
        extra_test = _convert_testing(training.parent / "testing", target, progress) if include_testing else 0
    counts = {"labeled": 2 * len(split.labeled + split.val), "test": 2 * len(split.test) + extra_test,
              "unlabeled": 2 * len(split.unlabeled) + cine}
    write_json_atomic({"name": "ACDC", "description": "ACDC cardiac cine MRI (CREATIS), converted by sss_convert_acdc",
                       "channel_names": {"0": "MRI"}, "labels": LABELS, "numTraining": counts["labeled"],
                       "numTest": counts["test"], "numUnlabeled": counts["unlabeled"], "file_ending": ENDING,
                       "labeled_patients": list(split.labeled), "validation_patients": list(split.val),
                       "protocol": "custom split" if split_file else f"SSL4MIS, {labeled_cases} labeled case(s)"},
                      target / "dataset.json")
    fold = {"train": [f"{p}_{s}" for p in split.labeled for s in ("ED", "ES")],
            "val": [f"{p}_{s}" for p in split.val for s in ("ED", "ES")]}
    write_json_atomic([fold], target / "splits_final.json")
    return counts


def _convert_testing(testing: Path, target: Path, progress: bool) -> int:
    """The release's testing/ patients → imagesTs (+ labelsTs when labeled); returns the number of frames."""
    if not testing.is_dir():
        raise DatasetError(f"{testing}: no testing folder in the release (--include-testing)")
    written = 0
    for folder in tqdm(sorted(p for p in testing.glob("patient*") if p.is_dir()), desc="ACDC testing", unit="patient",
                       disable=None if progress else True):
        for phase, (image, label, _) in _frames(folder, labels_required=False).items():
            copy_atomic(image, target / "imagesTs" / f"{folder.name}_{phase}_0000{ENDING}")
            if label is not None:
                copy_atomic(label, target / "labelsTs" / f"{folder.name}_{phase}{ENDING}")
            written += 1
    return written


def _write_cine(path: Path, skip_frames: set[int], folder: Path, patient: str) -> int:
    """Every other frame of a 4D cine (1-based numbering, ED/ES skipped) as 3D unlabeled images."""
    frames, geometry = read_image_4d(path)
    written = 0
    for index in range(0, frames.shape[0], 2):
        number = index + 1
        if number in skip_frames:
            continue
        write_image(frames[index], geometry, folder / f"{patient}_cine{number:02d}_0000{ENDING}")
        written += 1
    return written
