"""Preprocess one case: transpose, crop to nonzero, normalize, resample; and the way back for labels.

Training and prediction both call `preprocess_case`, so they cannot drift apart. The returned
`CaseProperties` hold everything `restore_geometry` needs to undo the steps on export.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planners.plans import ConfigurationPlan, Plans
from preprocessing.cropping import crop, nonzero_bbox, uncrop
from preprocessing.normalization import normalize
from preprocessing.resampling import resample_data, resample_label, resample_probabilities, target_shape
from sss_auto.io.nifti import Geometry

MAX_FOREGROUND_SAMPLES = 10_000


@dataclass(frozen=True)
class CaseProperties:
    """What was done to a case.

    Attributes:
        case_id: identifier.
        geometry: the raw image's geometry (restored on export).
        bbox: crop box in the transposed raw array, ((z0, z1), (y0, y1), (x0, x1)), end exclusive.
        spacing_mm: (z, y, x) spacing after transposition, before resampling.
        shape_after_crop: transposed, cropped shape before resampling.
        shape_after_resampling: shape of the cached arrays (z, y, x).
        spacing_after_resampling_mm: spacing of the cached arrays.
    """

    case_id: str
    geometry: Geometry
    bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    spacing_mm: tuple[float, float, float]
    shape_after_crop: tuple[int, int, int]
    shape_after_resampling: tuple[int, int, int]
    spacing_after_resampling_mm: tuple[float, float, float]


@dataclass(frozen=True)
class CachedCase:
    """A preprocessed case, in memory (`preprocess_case`) or memory-mapped from the cache (`CaseCache.load`).

    Attributes:
        data: float32 (C, z, y, x), normalized.
        seg: int16 (z, y, x) or None (unlabeled).
        foreground: int32 (N, 4) rows (class, z, y, x): sampled voxels per class for oversampling.
        properties: how to undo the steps.
    """

    data: np.ndarray
    seg: np.ndarray | None
    foreground: np.ndarray
    properties: CaseProperties


def preprocess_case(case_id: str, images: np.ndarray, label: np.ndarray | None, geometry: Geometry,
                    plans: Plans, configuration: str, seed: int = 1234) -> CachedCase:
    """Apply the planned preprocessing to one case.

    Args:
        images: float32 (C, z, y, x) raw intensities, as read.
        label: integer (z, y, x) or None.
        geometry: geometry of the raw images.
        plans, configuration: which plan to apply.
        seed: for the foreground sample (deterministic).
    """
    config = plans.configuration(configuration)
    forward = list(plans.transpose_forward)
    images = images.transpose([0] + [a + 1 for a in forward])
    spacing = tuple(float(geometry.spacing_mm[a]) for a in forward)
    label = label.transpose(forward) if label is not None else None
    bbox = nonzero_bbox(images)
    images, label = crop(images, bbox), (crop(label, bbox) if label is not None else None)
    shape_after_crop = tuple(int(n) for n in images.shape[1:])
    images = normalize(images, plans.normalization)
    new_spacing = _target_spacing(spacing, config)
    new_shape = target_shape(shape_after_crop, spacing, new_spacing)
    r = plans.resampling
    data = resample_data(images, new_shape, spacing, new_spacing, r.order_image, r.order_thick_axis, r.anisotropy_threshold)
    seg = (resample_label(label, new_shape, spacing, new_spacing, r.order_thick_axis, r.order_label, r.anisotropy_threshold)
           if label is not None else None)
    foreground = sample_foreground(seg, np.random.default_rng(seed)) if seg is not None else np.zeros((0, 4), np.int32)
    properties = CaseProperties(case_id, geometry, bbox, spacing, shape_after_crop, tuple(int(n) for n in new_shape),
                                tuple(float(s) for s in new_spacing))
    return CachedCase(data, seg, foreground, properties)


def _target_spacing(spacing: tuple[float, float, float], config: ConfigurationPlan) -> tuple[float, float, float]:
    """The plan's spacing; 2d plans keep the case's own first-axis spacing (slices are not resampled)."""
    target = tuple(config.spacing_mm)
    return target if config.resample_z else (spacing[0], target[1], target[2])


def sample_foreground(seg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to MAX_FOREGROUND_SAMPLES voxels per class (at least 1% of the class), as (class, z, y, x) rows."""
    rows = []
    for value in np.unique(seg):
        if value <= 0:
            continue
        coords = np.argwhere(seg == value)
        count = min(len(coords), max(MAX_FOREGROUND_SAMPLES, int(np.ceil(0.01 * len(coords)))))
        chosen = coords[rng.choice(len(coords), count, replace=False)]
        rows.append(np.concatenate([np.full((count, 1), value), chosen], axis=1))
    return np.concatenate(rows).astype(np.int32) if rows else np.zeros((0, 4), np.int32)


def restore_probabilities(probs: np.ndarray, properties: CaseProperties, plans: Plans) -> np.ndarray:
    """Undo resampling, cropping and transposition of class probabilities.

    Args:
        probs: float32 (K+1, z, y, x) on the cached grid.

    Returns:
        float32 (K+1, *raw shape) in the raw array's axis order; outside the crop box: background.
    """
    p = properties
    r = plans.resampling
    probs = resample_probabilities(probs, p.shape_after_crop, p.spacing_after_resampling_mm, p.spacing_mm,
                                   r.order_thick_axis, r.anisotropy_threshold)
    full_transposed = tuple(p.geometry.shape[a] for a in plans.transpose_forward)
    background = np.zeros((probs.shape[0], 1, 1, 1), np.float32)
    background[0] = 1.0
    out = uncrop(probs, p.bbox, full_transposed) + (1 - uncrop(np.ones((1,) + probs.shape[1:], np.float32), p.bbox, full_transposed)) * background
    return out.transpose([0] + [a + 1 for a in plans.transpose_backward])


def restore_label(seg: np.ndarray, properties: CaseProperties, plans: Plans) -> np.ndarray:
    """Undo the steps for a label map on the cached grid (z, y, x) -> raw shape, same values."""
    p = properties
    r = plans.resampling
    seg = resample_label(seg, p.shape_after_crop, p.spacing_after_resampling_mm, p.spacing_mm, r.order_thick_axis,
                         r.order_label, r.anisotropy_threshold)
    full_transposed = tuple(p.geometry.shape[a] for a in plans.transpose_forward)
    return uncrop(seg, p.bbox, full_transposed).transpose(plans.transpose_backward)
