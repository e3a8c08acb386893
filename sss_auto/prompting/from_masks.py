"""Boxes and points from label maps, for a batch of 2D slices (SAM-2's (x, y) pixel convention).

Labeled slices get prompts from the ground truth (with box jitter and random prompt dropping);
unlabeled slices from the PCSW bank's objects after the weak view's spatial augmentation; test
slices from PCSW on the coarse prediction. The same function serves all three.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from sss_auto.networks.prompts import Prompts

BOX_JITTER = 0.1  # ± share of the box side


def box_and_point(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight box (x0, y0, x1, y1) (x1, y1 exclusive) and the (x, y) pixel farthest from the border.

    Args:
        mask: bool (H, W), not empty.

    The point is the maximum of the Euclidean distance transform, so it always lies inside the
    object, even a concave one.
    """
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.pad(mask[y0:y1, x0:x1], 1)
    distance = ndimage.distance_transform_edt(crop)
    py, px = np.unravel_index(int(distance.argmax()), distance.shape)
    return np.array([x0, y0, x1, y1], np.float32), np.array([px - 1 + x0, py - 1 + y0], np.float32)


def prompts_from_label_maps(label_maps: np.ndarray, num_foreground: int, rng: np.random.Generator | None = None,
                            drop_probability: float = 0.0) -> Prompts:
    """One box + point per (slice, class present).

    Args:
        label_maps: integer (B, H, W), values 0..K.
        num_foreground: K.
        rng: when given, boxes get ±10% jitter (clipped to the image) and prompts are dropped with
            `drop_probability` (so the model also learns the prompt-free path).

    Returns:
        Prompts with boxes (B, K, 4), points (B, K, 2), valid (B, K).
    """
    batch, height, width = label_maps.shape
    boxes = np.zeros((batch, num_foreground, 4), np.float32)
    points = np.zeros((batch, num_foreground, 2), np.float32)
    valid = np.zeros((batch, num_foreground), bool)
    for b in range(batch):
        for k in range(1, num_foreground + 1):
            mask = label_maps[b] == k
            if not mask.any() or (rng is not None and rng.random() < drop_probability):
                continue
            box, point = box_and_point(mask)
            if rng is not None:
                box = _jitter(box, rng, width, height)
            boxes[b, k - 1], points[b, k - 1], valid[b, k - 1] = box, point, True
    return Prompts(torch.from_numpy(boxes), torch.from_numpy(points), torch.from_numpy(valid))


def _jitter(box: np.ndarray, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    side = np.array([box[2] - box[0], box[3] - box[1]] * 2, np.float32)
    moved = box + rng.uniform(-BOX_JITTER, BOX_JITTER, 4).astype(np.float32) * side
    moved = np.clip(moved, 0, [width, height, width, height])
    moved[2:] = np.maximum(moved[2:], moved[:2] + 1)
    return moved.astype(np.float32)
