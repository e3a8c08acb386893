"""Crop a case to the bounding box of its nonzero region (as nnU-Net does)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BBox = tuple[tuple[int, int], ...]


def nonzero_bbox(images: np.ndarray) -> BBox:
    """Bounding box of voxels nonzero in any channel, holes filled.

    Args:
        images: (C, z, y, x) array.

    Returns:
        ((z0, z1), (y0, y1), (x0, x1)), end exclusive; the whole array when everything is zero.
    """
    mask = ndimage.binary_fill_holes(np.any(images != 0, axis=0))
    if not mask.any():
        return tuple((0, n) for n in images.shape[1:])
    bbox = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        bbox.append((int(present[0]), int(present[-1]) + 1))
    return tuple(bbox)


def crop(array: np.ndarray, bbox: BBox) -> np.ndarray:
    """Crop the last len(bbox) axes of `array` to `bbox`."""
    leading = (slice(None),) * (array.ndim - len(bbox))
    return array[leading + tuple(slice(a, b) for a, b in bbox)]


def uncrop(array: np.ndarray, bbox: BBox, full_shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """Place a cropped array (leading axes kept) back into an array of `full_shape` spatial size."""
    leading = array.shape[: array.ndim - len(bbox)]
    out = np.full(leading + tuple(full_shape), fill, dtype=array.dtype)
    out[(slice(None),) * len(leading) + tuple(slice(a, b) for a, b in bbox)] = array
    return out
