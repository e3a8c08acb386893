"""Dataset fingerprint: geometry of every case, labeled-foreground intensities and object sizes.

Map, then reduce (as MONAI's analyzers): `analyze_case` runs per case in a worker and returns
plain data; `summarize` pools those results into a Fingerprint. Beyond nnU-Net, the fingerprint
records per class the connected-component volumes (mm³) and slice extents, which PCSW uses as
physical constraints, and unlabeled cases contribute their spacing and shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from preprocessing.cropping import crop, nonzero_bbox
from sss_auto.dataset.integrity import check_dataset_structure, read_case
from sss_auto.dataset.raw import Case, RawDataset
from sss_auto.errors import PlansError
from sss_auto.io.atomic import read_json
from sss_auto.io.serialization import SchemaError, from_dict
from sss_auto.parallel import map_unordered
from sss_auto.regions import first_axis_extents, label_components

FORMAT_VERSION = 1
SAMPLES_PER_CASE = 10_000


@dataclass(frozen=True)
class IntensityStats:
    """Intensity statistics of one channel over sampled labeled-foreground voxels (raw units)."""

    mean: float
    std: float
    median: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float
    source: str  # "labeled foreground" or "nonzero voxels" (fallback when no case has foreground)


@dataclass(frozen=True)
class ClassStats:
    """Sizes of one class's 26-connected components over the labeled cases, and how common the class is.

    `slice_extent_*` count slices along the array's first axis (z); volumes are in mm³.
    `voxel_fraction` (share of all labeled voxels) and `slice_presence_rate` (share of labeled
    z-slices holding the class) are the labeled prior that training compares its pseudo labels
    with; None in fingerprints written before they were recorded.
    """

    presence_rate: float
    num_components: int
    volume_mm3_min: float
    volume_mm3_p05: float
    volume_mm3_median: float
    volume_mm3_p95: float
    volume_mm3_max: float
    slice_extent_min: int
    slice_extent_max: int
    voxel_fraction: float | None = None
    slice_presence_rate: float | None = None


@dataclass(frozen=True)
class CaseFingerprint:
    """Geometry of one case: spacing (z, y, x) mm, shape and shape after crop-to-nonzero (voxels)."""

    case_id: str
    subset: str
    spacing_mm: tuple[float, float, float]
    shape: tuple[int, int, int]
    shape_after_crop: tuple[int, int, int]


@dataclass(frozen=True)
class Fingerprint:
    """Everything the planner needs to know about a dataset."""

    format_version: int
    dataset_name: str
    channel_names: tuple[str, ...]
    labels: dict[str, int]
    cases: tuple[CaseFingerprint, ...]
    intensity_per_channel: tuple[IntensityStats, ...]
    classes: dict[str, ClassStats]

    def spacings(self, subset: str | None = None) -> np.ndarray:
        """(N, 3) spacings of the cases of `subset` (all when None)."""
        return np.array([c.spacing_mm for c in self.cases if subset is None or c.subset == subset])

    def shapes_after_crop(self) -> np.ndarray:
        """(N, 3) shapes after cropping of all cases."""
        return np.array([c.shape_after_crop for c in self.cases])


@dataclass(frozen=True)
class CaseAnalysis:
    """Per-case result of `analyze_case` (plain data, picklable)."""

    fingerprint: CaseFingerprint
    foreground_samples: tuple[np.ndarray, ...] | None  # per channel, float32; None for unlabeled
    nonzero_samples: tuple[np.ndarray, ...]
    components: dict[int, list[tuple[float, int]]]  # label -> [(volume_mm3, slice_extent)]
    class_voxels: dict[int, int]  # label -> voxels (labeled cases only)
    class_slices: dict[int, int]  # label -> z-slices holding it


def analyze_case(args: tuple[Case, tuple[int, ...], int]) -> CaseAnalysis:
    """Read, check and measure one case (runs in a worker process)."""
    case, label_values, seed = args
    images, label, geometry = read_case(case, set(label_values))
    bbox = nonzero_bbox(images)
    cropped = crop(images, bbox)
    rng = np.random.default_rng(seed)
    nonzero = _sample(cropped, np.any(cropped != 0, axis=0), rng)
    foreground, components, class_voxels, class_slices = None, {}, {}, {}
    if label is not None:
        foreground = _sample(images, label > 0, rng)
        voxel_mm3 = float(np.prod(geometry.spacing_mm))
        for value in label_values:
            if value == 0:
                continue
            present = label == value
            labeled, count = label_components(present)
            if count == 0:
                continue
            class_voxels[value] = int(present.sum())
            class_slices[value] = int(present.any(axis=(1, 2)).sum())
            sizes = np.bincount(labeled.ravel())[1:]
            extents = first_axis_extents(labeled)
            components[value] = [(float(n) * voxel_mm3, int(e)) for n, e in zip(sizes, extents)]
    fingerprint = CaseFingerprint(case.case_id, case.subset, geometry.spacing_mm, geometry.shape,
                                  tuple(int(b - a) for a, b in bbox))
    return CaseAnalysis(fingerprint, foreground, nonzero, components, class_voxels, class_slices)


def _sample(images: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...] | None:
    if not mask.any():
        return None
    return tuple(rng.choice(channel[mask], SAMPLES_PER_CASE, replace=True).astype(np.float32) for channel in images)


def extract_fingerprint(dataset: RawDataset, num_processes: int = 2, progress: bool = True) -> Fingerprint:
    """Check the dataset, analyze every labeled and unlabeled case, and summarize.

    Raises:
        DatasetError: from the integrity checks, naming the file.
    """
    subsets = check_dataset_structure(dataset)
    cases = subsets["labeled"] + subsets["unlabeled"]
    label_values = tuple(sorted(dataset.labels.values()))
    jobs = [(case, label_values, 1234 + index) for index, case in enumerate(cases)]
    results = list(map_unordered(analyze_case, jobs, num_processes, desc="fingerprint", progress=progress))
    order = {case.case_id + case.subset: i for i, case in enumerate(cases)}
    results.sort(key=lambda r: order[r.fingerprint.case_id + r.fingerprint.subset])
    return summarize(dataset, results)


def summarize(dataset: RawDataset, results: list[CaseAnalysis]) -> Fingerprint:
    """Pool per-case analyses into a Fingerprint (the reduce step; no I/O)."""
    labeled = [r for r in results if r.fingerprint.subset == "labeled"]
    intensity = []
    for channel in range(len(dataset.channel_names)):
        samples = [r.foreground_samples[channel] for r in labeled if r.foreground_samples is not None]
        source = "labeled foreground"
        if not samples:
            samples, source = [r.nonzero_samples[channel] for r in results if r.nonzero_samples is not None], "nonzero voxels"
        intensity.append(_intensity_stats(np.concatenate(samples), source))
    classes = {}
    labeled_voxels = sum(int(np.prod(r.fingerprint.shape)) for r in labeled)
    labeled_slices = sum(r.fingerprint.shape[0] for r in labeled)
    for name, value in dataset.labels.items():
        if value == 0:
            continue
        comps = [c for r in labeled for c in r.components.get(value, [])]
        present = sum(1 for r in labeled if value in r.components)
        if comps:
            volumes = np.array([v for v, _ in comps])
            extents = [e for _, e in comps]
            classes[str(value)] = ClassStats(
                presence_rate=present / len(labeled), num_components=len(comps),
                volume_mm3_min=float(volumes.min()), volume_mm3_p05=float(np.percentile(volumes, 5)),
                volume_mm3_median=float(np.median(volumes)), volume_mm3_p95=float(np.percentile(volumes, 95)),
                volume_mm3_max=float(volumes.max()), slice_extent_min=int(min(extents)), slice_extent_max=int(max(extents)),
                voxel_fraction=sum(r.class_voxels.get(value, 0) for r in labeled) / labeled_voxels,
                slice_presence_rate=sum(r.class_slices.get(value, 0) for r in labeled) / labeled_slices)
        else:
            classes[str(value)] = ClassStats(0.0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0)
    return Fingerprint(FORMAT_VERSION, dataset.name, dataset.channel_names, dict(dataset.labels),
                       tuple(r.fingerprint for r in results), tuple(intensity), classes)


def _intensity_stats(values: np.ndarray, source: str) -> IntensityStats:
    low, median, high = np.percentile(values, [0.5, 50, 99.5])
    return IntensityStats(float(values.mean()), float(values.std()), float(median), float(values.min()),
                          float(values.max()), float(low), float(high), source)


def load_fingerprint(path: Path) -> Fingerprint:
    """Read fingerprint.json strictly; errors name the file and the key."""
    try:
        data = read_json(path)
        fingerprint = from_dict(Fingerprint, data, "fingerprint")
    except FileNotFoundError as err:
        raise PlansError(f"{path}: missing; run sss_extract_fingerprint first") from err
    except (ValueError, SchemaError) as err:
        raise PlansError(f"{path}: {err}") from err
    if fingerprint.format_version != FORMAT_VERSION:
        raise PlansError(f"{path}: format_version {fingerprint.format_version}, expected {FORMAT_VERSION}; re-run with --clean")
    return fingerprint
