"""Pick 2D training patches from cached volumes, with foreground oversampling."""

from __future__ import annotations

import numpy as np

from preprocessing.case import CachedCase


def choose_slice_and_center(volume: CachedCase, rng: np.random.Generator, force_foreground: bool) -> tuple[int, int, int]:
    """(z, y, x): a random voxel of a random present class when forced (and any exists), else uniform."""
    shape = volume.data.shape[1:]
    if force_foreground and len(volume.foreground):
        classes = np.unique(volume.foreground[:, 0])
        rows = volume.foreground[volume.foreground[:, 0] == rng.choice(classes)]
        _, z, y, x = rows[rng.integers(len(rows))]
        return int(z), int(y), int(x)
    return tuple(int(rng.integers(n)) for n in shape)


def crop_slice(image: np.ndarray, label: np.ndarray, center_yx: tuple[int, int], size: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A size×size window around `center_yx` (randomly offset so the center is not always in the middle).

    Args:
        image: float32 (C, H, W); label: integer (H, W).

    Returns:
        float32 (C, size, size) and int16 (size, size); zero-padded where the window leaves the slice.
    """
    return cut_window(image, label, window_start(center_yx, label.shape, size, rng), size)


def window_start(center_yx: tuple[int, int], shape_yx: tuple[int, int], size: int,
                 rng: np.random.Generator) -> tuple[int, int]:
    """(y0, x0) of a size×size window around `center_yx`, randomly offset, inside the slice where it fits."""
    starts = []
    for center, extent in zip(center_yx, shape_yx):
        offset = int(rng.integers(-size // 4, size // 4 + 1))
        start = center - size // 2 + offset
        if extent >= size:
            start = int(np.clip(start, 0, extent - size))
        else:
            start = -int(rng.integers(0, size - extent + 1))
        starts.append(start)
    return starts[0], starts[1]


def cut_window(image: np.ndarray, label: np.ndarray, start_yx: tuple[int, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """The window at `start_yx` of image (..., H, W) and label (..., H, W), zero-padded outside the slice."""
    height, width = label.shape[-2:]
    (y0, x0) = start_yx
    out_image = np.zeros(image.shape[:-2] + (size, size), np.float32)
    out_label = np.zeros(label.shape[:-2] + (size, size), np.int16)
    sy, sx = slice(max(y0, 0), min(y0 + size, height)), slice(max(x0, 0), min(x0 + size, width))
    ty = slice(sy.start - y0, sy.stop - y0)
    tx = slice(sx.start - x0, sx.stop - x0)
    out_image[..., ty, tx] = image[..., sy, sx]
    out_label[..., ty, tx] = label[..., sy, sx]
    return out_image, out_label
