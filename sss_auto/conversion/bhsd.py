"""BHSD (Wu et al., MLMI 2023) as distributed → DatasetXXX_BHSD in the raw format.

Expected release layout (Kaggle / Hugging Face mirrors), zipped or not:
    label_192/images/<name>.nii.gz          192 CT volumes (HU)
    label_192/ground truths/<name>.nii.gz   their label maps (note the space), 0 background, 1 EDH,
                                            2 IPH, 3 IVH, 4 SAH, 5 SDH
    unlabel_2000/ or unlabel_1980/{anybleed,nobleed}/<name>.nii.gz
    dataset.json                            optional official 96/96 split (paths matched by file name)
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sss_auto.conversion.archives import extract_zip
from sss_auto.conversion.pairs import check_labeled_pair
from sss_auto.dataset.raw import check_case_id
from sss_auto.errors import DatasetError
from sss_auto.io.atomic import copy_atomic, read_json, write_json_atomic

logger = logging.getLogger(__name__)
LABELS = {"background": 0, "EDH": 1, "IPH": 2, "IVH": 3, "SAH": 4, "SDH": 5}
ENDING = ".nii.gz"


@dataclass
class BhsdRelease:
    """The files of a release: labeled image/label pairs by case id, unlabeled images, the split."""

    labeled: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    unlabeled: dict[str, Path] = field(default_factory=dict)
    test_ids: set[str] = field(default_factory=set)  # from the official dataset.json "test" list


def find_release(source: Path, scratch: Path) -> BhsdRelease:
    """Locate the release folders under `source` (zips are extracted into `scratch` first).

    Raises:
        DatasetError: no `images` + `ground truths` folder pair, or an image without its label.
    """
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: not found")
    roots = [source] if source.is_dir() else []
    archives = [source] if source.is_file() else sorted(source.glob("*.zip"))
    for index, archive in enumerate(archives):
        roots.append(extract_zip(archive, scratch / f"zip{index}"))
    release = BhsdRelease()
    label_dirs = [d for root in roots for d in root.rglob("ground truths") if d.is_dir() and (d.parent / "images").is_dir()]
    if not label_dirs:
        raise DatasetError(f"{source}: no label_192/images and label_192/ground truths folders (or zips holding them)")
    for label_dir in label_dirs:
        for image in sorted((label_dir.parent / "images").glob(f"*{ENDING}")):
            label = label_dir / image.name
            if not label.is_file():
                raise DatasetError(f"{image}: no label of the same name in {label_dir}")
            release.labeled[_case_id(image)] = (image, label)
    for root in roots:
        for bleed in ("anybleed", "nobleed"):
            for folder in root.rglob(bleed):
                for image in sorted(folder.glob(f"*{ENDING}")):
                    case_id = _case_id(image)
                    if case_id in release.unlabeled or case_id in release.labeled:
                        raise DatasetError(f"{image}: case {case_id} appears twice in the release")
                    release.unlabeled[case_id] = image
    for root in roots:
        split = root / "dataset.json"
        if split.is_file():
            release.test_ids = _official_test_ids(split, release)
            break
    return release


def _case_id(path: Path) -> str:
    case_id = path.name[: -len(ENDING)]
    check_case_id(case_id, path)
    return case_id


def _official_test_ids(path: Path, release: BhsdRelease) -> set[str]:
    meta = read_json(path)
    entries = meta.get("test", []) if isinstance(meta, dict) else []
    names = {Path(e["image"] if isinstance(e, dict) else e).name for e in entries}
    ids = {n[: -len(ENDING)] for n in names if n.endswith(ENDING)}
    unknown = sorted(ids - set(release.labeled))
    if unknown:
        logger.warning("%s: %d test case(s) of the official split are not in label_192 (e.g. %s)", path, len(unknown), unknown[0])
    logger.info("official split from %s: %d test case(s)", path, len(ids & set(release.labeled)))
    return ids & set(release.labeled)


def select_labeled(case_ids: list[str], labeled: str | None, seed: int) -> tuple[list[str], list[str]]:
    """(kept labeled, moved to unlabeled): `labeled` is a count ("10") or a share ("10%"); None keeps all."""
    if labeled is None:
        return sorted(case_ids), []
    try:
        count = round(len(case_ids) * float(labeled[:-1]) / 100) if labeled.endswith("%") else int(labeled)
    except ValueError as err:
        raise DatasetError(f"--labeled {labeled!r}: give a count (10) or a percentage (10%)") from err
    if not 1 <= count <= len(case_ids):
        raise DatasetError(f"--labeled {labeled}: gives {count} case(s); between 1 and {len(case_ids)} are available")
    order = [str(c) for c in np.random.default_rng(seed).permutation(sorted(case_ids))]
    return sorted(order[:count]), sorted(order[count:])


def check_class_order(presence: np.ndarray) -> list[str]:
    """Warnings when the label order looks unlike BHSD's (IPH most frequent, EDH rarest).

    Args:
        presence: number of cases containing each label value 0..5.
    """
    warnings = []
    if presence[1:].argmax() + 1 != LABELS["IPH"]:
        warnings.append(f"IPH (2) is not the most frequent class (cases per class 1..5: {presence[1:].tolist()}); "
                        "check that the release uses 1 EDH, 2 IPH, 3 IVH, 4 SAH, 5 SDH")
    if presence[1:].argmin() + 1 != LABELS["EDH"]:
        warnings.append(f"EDH (1) is not the rarest class (cases per class 1..5: {presence[1:].tolist()})")
    return warnings


def convert_bhsd(source: Path, target: Path, labeled: str | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Write the raw dataset folder `target` (e.g. SSS_raw/Dataset501_BHSD); returns counts per subset.

    The official test split (when a dataset.json is found) goes to imagesTs/labelsTs; the other
    labeled cases to imagesTr/labelsTr, of which `labeled` keeps a seeded subset and moves the
    rest to imagesUnlabeled (their labels are not copied); unlabel_* goes to imagesUnlabeled.
    """
    target = Path(target)
    with tempfile.TemporaryDirectory(prefix=".bhsd_", dir=target.parent if target.parent.exists() else None) as scratch:
        release = find_release(source, Path(scratch))
        train_ids = sorted(set(release.labeled) - release.test_ids)
        kept, moved = select_labeled(train_ids, labeled, seed)
        presence = np.zeros(6, np.int64)
        jobs = ([(c, "imagesTr", "labelsTr") for c in kept] + [(c, "imagesTs", "labelsTs") for c in sorted(release.test_ids)]
                + [(c, "imagesUnlabeled", None) for c in moved])
        for case_id, image_folder, label_folder in tqdm(jobs, desc="BHSD labeled", unit="case", disable=None if progress else True):
            image, label = release.labeled[case_id]
            presence += check_labeled_pair(image, label, LABELS) > 0
            copy_atomic(image, target / image_folder / f"{case_id}_0000{ENDING}")
            if label_folder:
                copy_atomic(label, target / label_folder / f"{case_id}{ENDING}")
        for case_id, image in tqdm(sorted(release.unlabeled.items()), desc="BHSD unlabeled", unit="case",
                                   disable=None if progress else True):
            copy_atomic(image, target / "imagesUnlabeled" / f"{case_id}_0000{ENDING}")
    for warning in check_class_order(presence):
        logger.warning("%s", warning)
    counts = {"labeled": len(kept), "test": len(release.test_ids), "unlabeled": len(moved) + len(release.unlabeled)}
    write_json_atomic({"name": "BHSD", "description": "Brain hemorrhage CT (Wu et al., MLMI 2023), converted by sss_convert_bhsd",
                       "channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": counts["labeled"],
                       "numTest": counts["test"], "numUnlabeled": counts["unlabeled"], "file_ending": ENDING,
                       "labeled_subset": labeled or "all", "seed": seed}, target / "dataset.json")
    return counts
