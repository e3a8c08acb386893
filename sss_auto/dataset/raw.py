"""Locate a raw dataset and list its cases (nnU-Net v2 format plus imagesUnlabeled/)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sss_auto.errors import DatasetError
from sss_auto.io.atomic import read_json

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
_FOLDER_PATTERN = re.compile(r"^Dataset(\d{3})_(.+)$")
_CHANNEL_PATTERN = re.compile(r"(.+)_(\d{4})")
_CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Case:
    """One case of a raw dataset.

    Attributes:
        case_id: identifier shared by the channel files and the label.
        images: one file per channel, in channel order.
        label: label file, or None for unlabeled and unannotated test cases.
        subset: "labeled", "unlabeled" or "test".
    """

    case_id: str
    images: tuple[Path, ...]
    label: Path | None
    subset: str


@dataclass(frozen=True)
class RawDataset:
    """A raw dataset folder with its dataset.json.

    Attributes:
        folder: the dataset folder (DatasetXXX_Name or Name).
        name: folder name, also used for the preprocessed and results folders.
        channel_names: channel index -> name ("CT", "MRI", ...), in channel order.
        labels: label name -> integer value, background 0 included.
        file_ending: ".nii.gz" etc.
        num_training: numTraining from dataset.json.
    """

    folder: Path
    name: str
    channel_names: tuple[str, ...]
    labels: dict[str, int]
    file_ending: str
    num_training: int

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return max(self.labels.values()) + 1

    def cases(self, subset: str) -> list[Case]:
        """List the cases of one subset, sorted by identifier (no file is opened)."""
        image_folder = {"labeled": "imagesTr", "unlabeled": "imagesUnlabeled", "test": "imagesTs"}[subset]
        label_folder = {"labeled": "labelsTr", "test": "labelsTs"}.get(subset)
        folder = self.folder / image_folder
        if not folder.is_dir():
            return []
        case_ids = list_case_ids(folder, self.file_ending, len(self.channel_names))
        cases = []
        for case_id in case_ids:
            images = tuple(folder / f"{case_id}_{c:04d}{self.file_ending}" for c in range(len(self.channel_names)))
            label = None
            if label_folder is not None:
                candidate = self.folder / label_folder / f"{case_id}{self.file_ending}"
                label = candidate if subset == "labeled" or candidate.exists() else None
            cases.append(Case(case_id, images, label, subset))
        return cases


def list_case_ids(folder: Path, file_ending: str, num_channels: int) -> list[str]:
    """Find case identifiers in an image folder and check the channel naming.

    Raises:
        DatasetError: a file without the `_XXXX` channel suffix, an unsafe identifier, or a case
            missing one of its `num_channels` channel files (the message names the file).
    """
    channels: dict[str, set[int]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.name.endswith(file_ending):
            raise DatasetError(f"{path}: does not end with the dataset's file_ending {file_ending!r}")
        case_id, channel = split_channel_name(path.name, file_ending)
        if channel is None:
            raise DatasetError(
                f"{path}: image names must be <case>_<4-digit channel>{file_ending}, e.g. {case_id}_0000{file_ending}"
            )
        check_case_id(case_id, path)
        if channel >= num_channels:
            raise DatasetError(f"{path}: channel {channel:04d} but dataset.json declares {num_channels} channel(s)")
        channels.setdefault(case_id, set()).add(channel)
    for case_id, found in channels.items():
        missing = sorted(set(range(num_channels)) - found)
        if missing:
            raise DatasetError(f"{folder / f'{case_id}_{missing[0]:04d}{file_ending}'}: missing channel file of case {case_id}")
    return sorted(channels)


def split_channel_name(file_name: str, file_ending: str) -> tuple[str, int | None]:
    """`<case>_0001<file_ending>` -> ("<case>", 1); a name without the channel suffix -> (stem, None)."""
    stem = file_name[: -len(file_ending)] if file_name.endswith(file_ending) else file_name
    match = _CHANNEL_PATTERN.fullmatch(stem)
    return (match.group(1), int(match.group(2))) if match else (stem, None)


def check_case_id(case_id: str, source: Path | str) -> None:
    """Reject identifiers that could escape a folder or confuse file naming (`..`, `/`, spaces)."""
    if not _CASE_ID_PATTERN.fullmatch(case_id) or ".." in case_id:
        raise DatasetError(f"{source}: case identifier {case_id!r} is not allowed (letters, digits, '_', '-', '.')")


def find_dataset(spec: str, raw_roots: Path | Sequence[Path]) -> RawDataset:
    """Resolve `-d` (a name such as BHSD, a folder name Dataset501_BHSD, or an id 501) to a dataset.

    Args:
        raw_roots: the folder the datasets are in, or several (paths.raw_roots: SSS_raw, then nnUNet_raw).

    Raises:
        DatasetError: nothing or several folders match (the message lists what exists), or the
            dataset.json is missing or incomplete.
    """
    roots = [Path(raw_roots)] if isinstance(raw_roots, (str, Path)) else [Path(r) for r in raw_roots]
    existing_roots = [r for r in roots if r.is_dir()]
    if not existing_roots:
        raise DatasetError(f"{roots[0]}: the raw data folder does not exist; set SSS_raw or run sss_make_demo")
    folders = [p for r in existing_roots for p in sorted(r.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    matches = [p for p in folders if matches_dataset(p.name, spec)]
    if len(matches) != 1:
        where = " or ".join(str(r) for r in existing_roots)
        existing = ", ".join(p.name for p in folders) or "none"
        what = "no dataset" if not matches else f"several datasets ({', '.join(str(p) for p in matches)})"
        raise DatasetError(f"{what} in {where} match {spec!r}; datasets there: {existing}")
    return load_dataset(matches[0])


def matches_dataset(folder_name: str, spec: str) -> bool:
    """True when `spec` (name, folder name or id) designates the folder `folder_name`."""
    match = _FOLDER_PATTERN.match(folder_name)
    if folder_name == spec:
        return True
    if match is None:
        return False
    if spec.isdigit():
        return int(match.group(1)) == int(spec)
    return match.group(2) == spec


def load_dataset(folder: Path) -> RawDataset:
    """Read dataset.json of `folder` and check its keys and values."""
    json_path = folder / "dataset.json"
    if not json_path.is_file():
        raise DatasetError(f"{json_path}: missing; every dataset needs a dataset.json (see documentation/dataset_format.md)")
    try:
        meta = read_json(json_path)
    except ValueError as err:
        raise DatasetError(str(err)) from err
    if not isinstance(meta, dict):
        raise DatasetError(f"{json_path}: must hold a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise DatasetError(f"{json_path}: missing key(s) {', '.join(missing)}")
    channels = meta["channel_names"]
    if not isinstance(channels, dict) or sorted(channels) != [str(i) for i in range(len(channels))] or not channels:
        raise DatasetError(f"{json_path}: channel_names must map '0', '1', ... to names, got {channels!r}")
    labels = meta["labels"]
    if not isinstance(labels, dict) or not all(isinstance(v, int) for v in labels.values()):
        raise DatasetError(f"{json_path}: labels must map names to integers (regions are not supported), got {labels!r}")
    values = sorted(labels.values())
    if values != list(range(len(values))):
        raise DatasetError(f"{json_path}: label values must be 0 (background), 1, 2, ... without gaps, got {values}")
    return RawDataset(
        folder=folder,
        name=folder.name,
        channel_names=tuple(channels[str(i)] for i in range(len(channels))),
        labels=dict(labels),
        file_ending=str(meta["file_ending"]),
        num_training=int(meta["numTraining"]),
    )
