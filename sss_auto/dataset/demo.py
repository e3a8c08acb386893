"""A synthetic BHSD-like head-CT dataset, generated in seconds, for the quickstart and the tests.

Volumes are in Hounsfield-like units (air, skull, brain, ventricles), with thick slices and three
hemorrhage-like classes of different shapes and sizes: intraparenchymal blobs (some small),
intraventricular blood inside the ventricles, and thin subdural crescents along the skull.

With `DemoSpec.rare_class_probability > 0` a fourth class is added, the hard case of
semi-supervised segmentation: small, rare epidural-like lenses against the inner skull (EDH, 1-2
lesions of a few hundred voxels in a minority of cases, brighter than the other blood).
Its random numbers come from a stream of their own, so the other classes are the same voxels
with and without it.

With `DemoSpec.heterogeneity > 0` every case also gets its own "scanner and patient" (from a third
stream, so 0 leaves the data unchanged): a calibration offset, a lower or higher blood-to-brain
contrast, more noise and blur, a rotated and resized head. Without it a handful of labeled cases
covers the whole distribution and more labels buy nothing (the semi-supervised benchmark's oracle
measured that: documentation/benchmarks.md), so nothing is left for unlabeled data to teach.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from sss_auto.io.atomic import write_json_atomic
from sss_auto.io.nifti import Geometry, write_image

DEMO_LABELS = {"background": 0, "IPH": 1, "IVH": 2, "SDH": 3}
RARE_LABEL = ("EDH", 4)
HETEROGENEITY_STREAM = 7  # the per-case condition's random stream: [case seed, 7]
HU_AIR, HU_SKULL, HU_BRAIN, HU_CSF, HU_BLOOD, HU_RARE = -1000.0, 900.0, 35.0, 5.0, 70.0, 100.0


@dataclass(frozen=True)
class DemoSpec:
    """Size of the demo dataset.

    Attributes:
        n_labeled / n_unlabeled / n_test: number of cases per subset.
        shape: nominal (z, y, x) voxels; each case varies it slightly.
        seed: everything is deterministic given the seed.
        rare_class_probability: share of cases with the small rare class EDH (label 4); 0 leaves it out.
        heterogeneity: 0..1, how much cases differ in scanner and anatomy (`CaseCondition`); 0: not at all.
        name: the dataset's name in dataset.json.
    """

    n_labeled: int = 6
    n_unlabeled: int = 10
    n_test: int = 3
    shape: tuple[int, int, int] = (20, 128, 128)
    seed: int = 0
    rare_class_probability: float = 0.0
    heterogeneity: float = 0.0
    name: str = "DemoBHSD"

    def range_problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for every share outside [0, 1]; empty when the spec is valid."""
        return [(name, f"must be in [0, 1], got {getattr(self, name)}")
                for name in ("rare_class_probability", "heterogeneity") if not 0 <= getattr(self, name) <= 1]

    def labels(self) -> dict[str, int]:
        """The label map of dataset.json."""
        return {**DEMO_LABELS, RARE_LABEL[0]: RARE_LABEL[1]} if self.rare_class_probability > 0 else dict(DEMO_LABELS)


@dataclass(frozen=True)
class DemoCase:
    """One generated case: its subset's image folder (imagesTr, imagesUnlabeled, imagesTs), id and arrays."""

    image_folder: str
    case_id: str
    image: np.ndarray
    label: np.ndarray  # also for unlabeled cases: the ground truth the dataset does not ship
    geometry: Geometry


LABEL_FOLDERS = {"imagesTr": "labelsTr", "imagesTs": "labelsTs"}  # imagesUnlabeled ships no labels


def demo_cases(spec: DemoSpec = DemoSpec()) -> Iterator[DemoCase]:
    """Every case of the demo dataset, in the order (and with the random numbers) make_demo_dataset writes them."""
    if problems := spec.range_problems():
        raise ValueError("; ".join(f"{name} {problem}" for name, problem in problems))
    rng = np.random.default_rng(spec.seed)
    subsets = [("imagesTr", spec.n_labeled, "demo"), ("imagesUnlabeled", spec.n_unlabeled, "unl"),
               ("imagesTs", spec.n_test, "test")]
    for image_folder, count, prefix in subsets:
        for index in range(count):
            case_seed = int(rng.integers(2**32))
            rotated = image_folder == "imagesTs" and index == 0
            rare_rng = np.random.default_rng([case_seed, RARE_LABEL[1]]) if spec.rare_class_probability > 0 else None
            condition = CaseCondition.draw(np.random.default_rng([case_seed, HETEROGENEITY_STREAM]), spec.heterogeneity)
            image, label, geometry = _make_case(np.random.default_rng(case_seed), spec.shape, rotated,
                                                rare_rng, spec.rare_class_probability, condition)
            yield DemoCase(image_folder, f"{prefix}_{index:03d}", image, label, geometry)


def make_demo_dataset(target: Path, spec: DemoSpec = DemoSpec()) -> Path:
    """Write the demo dataset into `target` (a DatasetXXX_Name folder) and return it.

    Files are written atomically; an existing dataset.json is overwritten.
    """
    target = Path(target)
    for case in demo_cases(spec):
        write_image(case.image, case.geometry, target / case.image_folder / f"{case.case_id}_0000.nii.gz")
        if case.image_folder in LABEL_FOLDERS:
            write_image(case.label.astype(np.uint8), case.geometry, target / LABEL_FOLDERS[case.image_folder] / f"{case.case_id}.nii.gz")
    write_json_atomic(
        {
            "name": spec.name,
            "description": "Synthetic BHSD-like head CT made by sss_make_demo (not real data)",
            "channel_names": {"0": "CT"},
            "labels": spec.labels(),
            "numTraining": spec.n_labeled,
            "numUnlabeled": spec.n_unlabeled,
            "file_ending": ".nii.gz",
        },
        target / "dataset.json",
    )
    return target


@dataclass(frozen=True)
class CaseCondition:
    """One case's scanner and patient: what differs between cases besides the lesions (identity: none)."""

    hu_offset: float = 0.0  # added to every tissue (calibration)
    blood_contrast: float = 1.0  # scales blood's (and EDH's) contrast against brain
    noise_sd: float = 8.0
    blur_mm: float = 0.0  # extra in-plane Gaussian blur
    angle_deg: float = 0.0  # in-plane rotation of the anatomy
    head_scale: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator, heterogeneity: float) -> CaseCondition:
        """A random condition whose spread grows with `heterogeneity` in [0, 1] (0: the identity, no draw)."""
        if heterogeneity <= 0:
            return cls()
        h = heterogeneity
        return cls(hu_offset=float(rng.uniform(-25, 25) * h), blood_contrast=float(1 + rng.uniform(-0.55, 0.3) * h),
                   noise_sd=float(8 * (1 + rng.uniform(0, 1.5) * h)), blur_mm=float(rng.uniform(0, 2.0) * h),
                   angle_deg=float(rng.uniform(-30, 30) * h), head_scale=float(1 + rng.uniform(-0.15, 0.1) * h))


def _make_case(rng: np.random.Generator, nominal_shape: tuple[int, int, int], rotated: bool,
               rare_rng: np.random.Generator | None = None, rare_probability: float = 0.0,
               condition: CaseCondition = CaseCondition()):
    shape = (nominal_shape[0] + int(rng.integers(-2, 3)), nominal_shape[1] + int(rng.integers(-8, 9)),
             nominal_shape[2] + int(rng.integers(-8, 9)))
    spacing = (float(rng.uniform(5.0, 6.0)), *(2 * [float(rng.uniform(1.25, 1.55))]))
    z, y, x = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    # small test volumes get a proportionally smaller head, so air and skull are always in view
    scale = min(1.0, shape[1] * spacing[1] / 180.0, shape[0] * spacing[0] / 120.0) * condition.head_scale
    zz, yy, xx = zz / scale, yy / scale, xx / scale
    if condition.angle_deg:
        angle = np.deg2rad(condition.angle_deg)
        yy, xx = np.cos(angle) * yy - np.sin(angle) * xx, np.sin(angle) * yy + np.cos(angle) * xx
    radii = np.array([rng.uniform(50, 56), rng.uniform(70, 78), rng.uniform(58, 64)])
    head = (zz / radii[0]) ** 2 + (yy / radii[1]) ** 2 + (xx / radii[2]) ** 2
    image = np.full(shape, HU_AIR, np.float32)
    brain = head < 0.85
    image[head < 1.0] = HU_SKULL
    image[brain] = HU_BRAIN
    ventricles = ((zz - 5) / 25) ** 2 + (yy / 30) ** 2 + (np.abs(xx) - 10) ** 2 / 8**2 < 1
    ventricles &= brain
    image[ventricles] = HU_CSF
    label = np.zeros(shape, np.uint8)
    _add_iph(rng, label, brain & ~ventricles, zz, yy, xx)
    if rng.random() < 0.7:
        blood = ventricles & (yy > rng.uniform(-5, 15))
        label[blood] = 2
    if rng.random() < 0.7:
        side = rng.choice([-1.0, 1.0])
        crescent = brain & (head > 0.62) & (side * xx > 15) & (np.abs(zz - rng.uniform(-20, 20)) < 22)
        label[crescent & (label == 0)] = 3
    contrast = condition.blood_contrast
    image[label > 0] = HU_BRAIN + contrast * (HU_BLOOD - HU_BRAIN) + rng.normal(0, 5)
    if rare_rng is not None and rare_rng.random() < rare_probability:
        rare = _rare_lesions(rare_rng, brain, zz, yy, xx, radii)
        label[rare] = RARE_LABEL[1]
        image[rare] = HU_BRAIN + contrast * (HU_RARE - HU_BRAIN) + rare_rng.normal(0, 5)
    image[image > HU_AIR] += condition.hu_offset
    blur = 0.7 + condition.blur_mm / spacing[1]
    image = ndimage.gaussian_filter(image, sigma=(0.3, blur, blur)) + rng.normal(0, condition.noise_sd, shape).astype(np.float32)
    direction = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    if rotated:
        angle = np.deg2rad(15.0)
        direction = (np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0)
    origin = tuple(float(v) for v in rng.uniform(-120, -80, 3))
    geometry = Geometry(shape=shape, spacing_mm=spacing, origin=origin, direction=tuple(float(d) for d in direction))
    return image.astype(np.float32), label, geometry


def _add_iph(rng, label, allowed, zz, yy, xx) -> None:
    """Intraparenchymal blobs: one large (sometimes absent) and sometimes one small lesion."""
    for radius_mm, probability in ((rng.uniform(10, 18), 0.85), (rng.uniform(3, 5), 0.5)):
        if rng.random() > probability:
            continue
        center = np.array([rng.uniform(-20, 20), rng.uniform(-40, 40), rng.uniform(-40, 40)])
        distance = ((zz - center[0]) / (radius_mm * 1.2)) ** 2 + ((yy - center[1]) / radius_mm) ** 2 \
            + ((xx - center[2]) / (radius_mm * 0.8)) ** 2
        label[(distance < 1) & allowed] = 1


def _rare_lesions(rng, brain, zz, yy, xx, radii) -> np.ndarray:
    """1-2 small epidural-like lenses against the inner skull (a few hundred voxels each), as a bool mask."""
    mask = np.zeros(brain.shape, bool)
    inner = np.sqrt(0.85) * radii  # the brain's surface: head == 0.85
    for _ in range(int(rng.integers(1, 3))):
        angle, z0 = rng.uniform(0, 2 * np.pi), rng.uniform(-15, 15)
        direction = np.array([np.cos(angle), np.sin(angle)])  # (y, x)
        # distance from the centre to the brain's surface along the direction, at height z0
        r = np.sqrt(max(1 - (z0 / inner[0]) ** 2, 0.1) / ((direction[0] / inner[1]) ** 2 + (direction[1] / inner[2]) ** 2))
        cy, cx = (r - 2.0) * direction
        radial = (yy - cy) * direction[0] + (xx - cx) * direction[1]
        tangential = -(yy - cy) * direction[1] + (xx - cx) * direction[0]
        semi = (rng.uniform(8, 11), rng.uniform(11, 15), rng.uniform(5.5, 7))  # z, tangential, radial in mm
        lens = ((zz - z0) / semi[0]) ** 2 + (tangential / semi[1]) ** 2 + (radial / semi[2]) ** 2 < 1
        mask |= lens & brain
    return mask
