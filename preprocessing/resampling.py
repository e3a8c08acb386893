"""Resampling of images and label maps between spacings (nnU-Net's orders, separate thick axis).

Images: cubic in-plane; labels: linear on one-hot masks then thresholded. When the data is
anisotropic (max/min spacing > 3) the thick axis is resampled separately with nearest neighbour,
which avoids smearing intensities across thick slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

ANISOTROPY_THRESHOLD = 3.0


def target_shape(shape: tuple[int, ...], spacing: tuple[float, ...], new_spacing: tuple[float, ...]) -> tuple[int, ...]:
    """Shape after resampling: round(shape × spacing / new_spacing), at least 1 per axis."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, new_spacing))


def separate_axis(spacing: tuple[float, ...], new_spacing: tuple[float, ...],
                  anisotropy: float = ANISOTROPY_THRESHOLD) -> int | None:
    """The thick axis to resample separately (spacing ratio above `anisotropy`), or None (isotropic enough or ambiguous)."""
    for candidate in (spacing, new_spacing):
        if max(candidate) / min(candidate) > anisotropy:
            axis = int(np.argmax(candidate))
            if sum(np.isclose(candidate, candidate[axis])) == 1:
                return axis
    return None


def resample_data(data: np.ndarray, new_shape: tuple[int, int, int], spacing, new_spacing,
                  order: int = 3, order_thick: int = 0, anisotropy: float = ANISOTROPY_THRESHOLD) -> np.ndarray:
    """Resample intensities.

    Args:
        data: float32 (C, z, y, x).
        new_shape: target (z, y, x).
        spacing, new_spacing: (z, y, x) in mm, used to find a thick axis.
        order: spline order in-plane (3 = cubic).
        order_thick: order along a separate thick axis (0 = nearest).
        anisotropy: spacing ratio above which the thick axis is resampled separately.

    Returns:
        float32 (C, *new_shape).
    """
    if tuple(data.shape[1:]) == tuple(new_shape):
        return data.astype(np.float32, copy=True)
    return np.stack([_resample_3d(channel, new_shape, spacing, new_spacing, order, order_thick, anisotropy)
                     for channel in data])


def resample_label(label: np.ndarray, new_shape: tuple[int, int, int], spacing, new_spacing,
                   order_thick: int = 0, order: int = 1, anisotropy: float = ANISOTROPY_THRESHOLD) -> np.ndarray:
    """Resample a label map by interpolating each class's mask (order 1: linear), thresholded at 0.5.

    Args:
        label: integer (z, y, x).
        order: interpolation order of the masks in-plane; order_thick along a separate thick axis.

    Returns:
        int16 (z, y, x) of `new_shape`.
    """
    if tuple(label.shape) == tuple(new_shape):
        return label.astype(np.int16, copy=True)
    out = np.zeros(new_shape, dtype=np.int16)
    for value in np.unique(label):
        if value == 0:
            continue
        mask = _resample_3d((label == value).astype(np.float32), new_shape, spacing, new_spacing, order, order_thick,
                            anisotropy)
        out[mask >= 0.5] = value
    return out


def resample_probabilities(probs: np.ndarray, new_shape: tuple[int, int, int], spacing, new_spacing,
                           order_thick: int = 0, anisotropy: float = ANISOTROPY_THRESHOLD) -> np.ndarray:
    """Resample class probabilities (C, z, y, x) linearly (thick axis: order_thick), float32."""
    if tuple(probs.shape[1:]) == tuple(new_shape):
        return probs.astype(np.float32, copy=True)
    return np.stack([_resample_3d(channel, new_shape, spacing, new_spacing, 1, order_thick, anisotropy)
                     for channel in probs])


def _resample_3d(volume: np.ndarray, new_shape, spacing, new_spacing, order: int, order_thick: int,
                 anisotropy: float) -> np.ndarray:
    zoom = np.array(new_shape, dtype=float) / np.array(volume.shape, dtype=float)
    axis = separate_axis(tuple(spacing), tuple(new_spacing), anisotropy)
    volume = volume.astype(np.float32, copy=False)
    if axis is None:
        return _zoom(volume, zoom, order)
    in_plane = zoom.copy()
    in_plane[axis] = 1.0
    out = _zoom(volume, in_plane, order) if not np.allclose(in_plane, 1.0) else volume
    thick = np.ones(3)
    thick[axis] = zoom[axis]
    if not np.isclose(zoom[axis], 1.0):
        out = _zoom(out, thick, order_thick)
    return out


def _zoom(volume: np.ndarray, zoom: np.ndarray, order: int) -> np.ndarray:
    """Spline zoom of a 3D volume; an axis that keeps its size (zoom exactly 1) is not interpolated.

    With grid_mode the samples of an axis zoomed by exactly 1 fall on its knots, where a spline
    reproduces the data, so zooming each slice along that axis in 2D gives the 3D zoom's result (the
    same float32 values: tests/preprocessing/test_preprocessing.py) with a quarter of the cubic taps:
    the 2d configuration, which keeps z, preprocesses about twice as fast.
    """
    kept = [axis for axis in range(volume.ndim) if zoom[axis] == 1.0]
    if volume.ndim == 3 and len(kept) == 1 and order > 0:  # nearest has no taps to save
        axis = kept[0]
        others = np.delete(np.asarray(zoom, dtype=float), axis)
        slices = [_zoom_nd(plane, others, order) for plane in np.moveaxis(volume, axis, 0)]
        return np.moveaxis(np.stack(slices), 0, axis)
    return _zoom_nd(volume, zoom, order)


def _zoom_nd(volume: np.ndarray, zoom: np.ndarray, order: int) -> np.ndarray:
    # grid_mode=True maps pixel edges to edges (as skimage.resize does); 'nearest' extends the border.
    return ndimage.zoom(volume, zoom, order=order, mode="nearest", grid_mode=True, prefilter=order > 1)
