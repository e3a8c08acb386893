"""Segmentation metrics per class on integer label maps, with physical spacing for distances.

Conventions (documented in documentation/evaluation.md):
- a class absent from both reference and prediction: every metric is NaN and left out of means;
- present in only one of them: Dice = IoU = 0, and the surface distances (HD95, ASD) are NaN,
  since a distance to an empty surface is undefined; `n_undefined_distance` counts these.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def class_metrics(prediction: np.ndarray, reference: np.ndarray, spacing_mm: tuple[float, ...] | None = None) -> dict[str, float]:
    """Dice, IoU and (when `spacing_mm` is given) HD95 and ASD in mm of two boolean masks."""
    p_sum, r_sum = int(prediction.sum()), int(reference.sum())
    out = {"dice": math.nan, "iou": math.nan}
    if spacing_mm is not None:
        out.update(hd95_mm=math.nan, asd_mm=math.nan)
    if p_sum + r_sum == 0:
        return out
    intersection = int(np.logical_and(prediction, reference).sum())
    out["dice"] = 2 * intersection / (p_sum + r_sum)
    out["iou"] = intersection / (p_sum + r_sum - intersection)
    if spacing_mm is not None and p_sum and r_sum:
        out["hd95_mm"], out["asd_mm"] = surface_distances(prediction, reference, spacing_mm)
    return out


def surface_distances(prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, ...]) -> tuple[float, float]:
    """HD95 and ASD of two non-empty boolean masks, in the unit of `spacing` (ones: voxels)."""
    distances = np.concatenate(_directed_surface_distances(prediction, reference, spacing))
    return float(np.percentile(distances, 95)), float(distances.mean())


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1), border_value=0)


def _directed_surface_distances(a: np.ndarray, b: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of a to b's surface, and from b's to a's."""
    union = np.argwhere(a | b)
    lo, hi = union.min(0), union.max(0) + 1
    window = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    surface_a, surface_b = _surface(np.pad(a[window], 1)), _surface(np.pad(b[window], 1))
    to_b = ndimage.distance_transform_edt(~surface_b, sampling=spacing_mm)
    to_a = ndimage.distance_transform_edt(~surface_a, sampling=spacing_mm)
    return to_b[surface_a], to_a[surface_b]
