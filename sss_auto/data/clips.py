"""Clips of consecutive slices for the volumetric configuration `2d_memory`.

A clip is `length` consecutive slices of one volume, cut with one in-plane window and moved by one
spatial transform, so the slices stay registered to each other as they are in the volume (what the
memory attention relies on). Intensity changes may differ per slice.
"""

from __future__ import annotations

import numpy as np
from batchgenerators.transforms.abstract_transforms import Compose

from sss_auto.data.sampling import cut_window, window_start


def clip_slices(num_slices: int, length: int, anchor: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `length` consecutive slices starting at `anchor`, the clip's prompt slice, going up or down.

    As at inference, where the volume is propagated from the prompt slice in both directions
    (networks/clip.py `propagation_passes`), the direction is drawn among those that fit in the
    volume (either, when both do). A volume shorter than `length` repeats its end slice.
    """
    if not 0 <= anchor < num_slices:
        raise ValueError(f"anchor slice {anchor} is outside a volume of {num_slices} slices")
    steps = np.arange(length)
    fitting = [d for d in (1, -1) if 0 <= anchor + d * (length - 1) < num_slices]
    direction = int(rng.choice(fitting)) if fitting else (1 if anchor < num_slices - 1 - anchor else -1)
    return np.clip(anchor + direction * steps, 0, num_slices - 1)


def crop_clip(data: np.ndarray, slices: np.ndarray, labels: np.ndarray, center_yx: tuple[int, int], size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same size×size window of every slice of the clip.

    Args:
        data: float32 (C, Z, H, W) volume; slices: the clip's slice indices (L,);
        labels: integer (L, H, W) labels (or PCSW objects) of those slices.

    Returns:
        float32 (L, C, size, size) and int16 (L, size, size).
    """
    start = window_start(center_yx, labels.shape[1:], size, rng)
    images, labels = cut_window(np.asarray(data[:, slices]), np.asarray(labels), start, size)
    return images.transpose(1, 0, 2, 3), labels


def augment_clips(transform: Compose, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One spatial transform per clip, the same for all its slices (they travel as channels of one sample).

    Args:
        images: float32 (B, L, C, s, s); labels: integer (B, L, s, s).

    Returns:
        float32 (B, L, C, patch, patch) and int64 (B, L, patch, patch).
    """
    batch, length, channels = images.shape[:3]
    out = transform(data=images.reshape(batch, length * channels, *images.shape[3:]), seg=labels.astype(np.float32))
    data = out["data"].astype(np.float32)
    return data.reshape(batch, length, channels, *data.shape[2:]), np.rint(out["seg"]).astype(np.int64)

