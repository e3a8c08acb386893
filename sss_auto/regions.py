"""Connected components the field's way: scikit-image's labelling and region properties.

`benchmarks/scipy_vs_skimage.py` (issue 16 §6): on 24 × 512 × 512 masks scikit-image found the same
components, sizes and boxes as scipy.ndimage's labelling, 5–21 % faster.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label, regionprops


def label_components(mask: np.ndarray, fully_connected: bool = True) -> tuple[np.ndarray, int]:
    """Components 1..count of a boolean mask, and count.

    Args:
        fully_connected: neighbours across edges and corners (26 in 3D, 8 in 2D); False: faces only (6 / 4).
    """
    labels, count = label(mask, connectivity=mask.ndim if fully_connected else 1, return_num=True)
    return labels, int(count)


def first_axis_extents(labels: np.ndarray) -> list[int]:
    """How many positions along the first axis (slices) each component 1..count spans, in label order."""
    return [int(region.bbox[labels.ndim] - region.bbox[0]) for region in regionprops(labels)]
