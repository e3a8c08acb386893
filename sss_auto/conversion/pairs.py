"""Checks shared by the converters: an image and its label on one voxel grid, with known label values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sss_auto.errors import DatasetError
from sss_auto.io.nifti import read_header, read_image


def check_labeled_pair(image: Path, label: Path, labels: dict[str, int]) -> np.ndarray:
    """Raise naming the file unless shape and spacing agree and every label value is one of `labels`.

    Args:
        labels: name -> value, background 0 included; values 0..max are accepted.

    Returns:
        int64 voxel counts per label value 0..max.
    """
    g_image, g_label = read_header(image), read_header(label)
    if g_image.shape != g_label.shape or not np.allclose(g_image.spacing_mm, g_label.spacing_mm, rtol=1e-3):
        raise DatasetError(f"{label}: geometry {g_label.shape} {g_label.spacing_mm} differs from {image} "
                           f"{g_image.shape} {g_image.spacing_mm}")
    values, counts = np.unique(np.rint(read_image(label)[0]).astype(np.int64), return_counts=True)
    top = max(labels.values())
    if values.min() < 0 or values.max() > top:
        names = ", ".join(name for name, value in sorted(labels.items(), key=lambda item: item[1]) if value > 0)
        raise DatasetError(f"{label}: label values {values.tolist()} outside 0-{top} ({names})")
    out = np.zeros(top + 1, np.int64)
    out[values] = counts
    return out
