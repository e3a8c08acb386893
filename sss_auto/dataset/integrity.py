"""Integrity checks of a raw dataset: structure and headers up front, voxel values per case."""

from __future__ import annotations


import numpy as np

from sss_auto.dataset.raw import Case, RawDataset, list_case_ids
from sss_auto.errors import DatasetError
from sss_auto.io.nifti import Geometry, read_header, read_image

SPACING_TOLERANCE = 1e-3  # relative


def check_dataset_structure(dataset: RawDataset) -> dict[str, list[Case]]:
    """Check naming, pairing and headers of every case before anything is read or written.

    Reads only file headers, so it is fast. Voxel-level checks (NaN/Inf, label values) run in
    `check_case_arrays` while each case is read anyway.

    Returns:
        The cases per subset ("labeled", "unlabeled", "test").

    Raises:
        DatasetError: naming the first offending file and the problem.
    """
    if not (dataset.folder / "imagesTr").is_dir():
        raise DatasetError(f"{dataset.folder / 'imagesTr'}: missing; labeled images go there")
    subsets = {subset: dataset.cases(subset) for subset in ("labeled", "unlabeled", "test")}
    labeled = subsets["labeled"]
    if not labeled:
        raise DatasetError(f"{dataset.folder / 'imagesTr'}: no labeled case; at least one is needed")
    if len(labeled) != dataset.num_training:
        raise DatasetError(
            f"{dataset.folder / 'dataset.json'}: numTraining is {dataset.num_training} but imagesTr holds "
            f"{len(labeled)} case(s); correct numTraining"
        )
    _check_labels_have_images(dataset, "labelsTr", "imagesTr")
    _check_labels_have_images(dataset, "labelsTs", "imagesTs")
    for cases in subsets.values():
        for case in cases:
            check_case_headers(case)
    return subsets


def _check_labels_have_images(dataset: RawDataset, label_folder: str, image_folder: str) -> None:
    folder = dataset.folder / label_folder
    if not folder.is_dir():
        return
    images = set()
    if (dataset.folder / image_folder).is_dir():
        images = set(list_case_ids(dataset.folder / image_folder, dataset.file_ending, len(dataset.channel_names)))
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.name.endswith(dataset.file_ending):
            raise DatasetError(f"{path}: does not end with the dataset's file_ending {dataset.file_ending!r}")
        case_id = path.name[: -len(dataset.file_ending)]
        if case_id not in images:
            raise DatasetError(f"{path}: label without image; expected {dataset.folder / image_folder / f'{case_id}_0000{dataset.file_ending}'}")


def check_case_headers(case: Case) -> Geometry:
    """Check that every channel and the label of a case exist and share shape and spacing.

    Returns:
        The geometry of the first channel.
    """
    reference = read_header(case.images[0])
    others = list(case.images[1:]) + ([case.label] if case.label is not None else [])
    for path in others:
        geometry = read_header(path)
        if geometry.shape != reference.shape:
            raise DatasetError(
                f"{path}: shape {geometry.shape} differs from {case.images[0]} {reference.shape}; "
                "image and label must share one voxel grid"
            )
        if not np.allclose(geometry.spacing_mm, reference.spacing_mm, rtol=SPACING_TOLERANCE):
            raise DatasetError(
                f"{path}: spacing {geometry.spacing_mm} differs from {case.images[0]} {reference.spacing_mm}; "
                "re-export both with one geometry"
            )
    return reference


def check_case_arrays(case: Case, images: np.ndarray, label: np.ndarray | None, label_values: set[int]) -> None:
    """Check voxel values: finite intensities and only declared, integer label values.

    Args:
        case: the case, for the messages.
        images: float32 (C, z, y, x).
        label: (z, y, x) label array or None.
        label_values: values declared in dataset.json.
    """
    for channel, path in enumerate(case.images):
        if not np.isfinite(images[channel]).all():
            count = int((~np.isfinite(images[channel])).sum())
            raise DatasetError(f"{path}: {count} NaN/Inf voxel(s); replace them before planning")
    if label is None:
        return
    values = np.unique(label)
    if not np.array_equal(values, np.round(values)):
        raise DatasetError(f"{case.label}: non-integer label values {values[values != np.round(values)][:5].tolist()}")
    undeclared = sorted(set(int(v) for v in values) - label_values)
    if undeclared:
        raise DatasetError(
            f"{case.label}: label value(s) {undeclared} are not declared in dataset.json labels {sorted(label_values)}"
        )


def read_case(case: Case, label_values: set[int]) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """Read all channels (and the label) of a case and check them.

    Returns:
        `images`: float32 (C, z, y, x); `label`: int16 (z, y, x) or None; `geometry` of channel 0.
    """
    arrays, geometry = [], None
    for path in case.images:
        array, this_geometry = read_image(path)
        geometry = geometry or this_geometry
        if array.shape != geometry.shape:
            raise DatasetError(f"{path}: shape {array.shape} differs from {case.images[0]} {geometry.shape}")
        arrays.append(array)
    images = np.stack(arrays)
    label = None
    if case.label is not None:
        label_array, label_geometry = read_image(case.label)
        if label_geometry.shape != geometry.shape:
            raise DatasetError(f"{case.label}: shape {label_geometry.shape} differs from {case.images[0]} {geometry.shape}")
        label = label_array
    check_case_arrays(case, images, label, label_values)
    return images, (label.astype(np.int16) if label is not None else None), geometry
