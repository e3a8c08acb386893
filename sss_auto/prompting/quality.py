"""How good PCSW's prompts are where the labels are known: recall, precision and box IoU per class.

Counts of one volume are returned by `prompt_quality_counts` and summed over volumes; `rates` turns
the sums into the three numbers logged at each bank refresh:
- recall: ground-truth objects (26-connected components of a class) that the kept prompt object overlaps;
- precision: (volume, class) pairs with a prompt whose kept object overlaps the class's ground truth;
- box IoU: over the slices that carry a prompt, the IoU of the prompt box with the ground-truth box of
  that class on that slice (0 where the slice has none of the class).
"""

from __future__ import annotations

import numpy as np

from sss_auto.prompting.pcsw import PCSWResult
from sss_auto.regions import label_components

COUNTS = ("objects", "objects_hit", "prompts", "prompts_on_target", "box_iou_sum", "box_slices")


def prompt_quality_counts(results: list[PCSWResult], reference: np.ndarray) -> dict[int, dict[str, float]]:
    """Per foreground class k (index k-1 of `results`), the counts of COUNTS for one volume.

    Args:
        results: PCSW's result per foreground class on the volume.
        reference: integer (S, H, W) ground-truth labels on the same grid.
    """
    counts = {}
    for k, result in enumerate(results, start=1):
        truth = reference == k
        objects, n_objects = label_components(truth)
        c = dict.fromkeys(COUNTS, 0.0)
        c["objects"] = float(n_objects)
        if result.mask is not None:
            c["prompts"] = 1.0
            hit = np.unique(objects[result.mask & truth])
            c["objects_hit"] = float(np.count_nonzero(hit))
            c["prompts_on_target"] = float(hit.size > 0)
            for z in np.flatnonzero(result.mask.any(axis=(1, 2))):
                c["box_iou_sum"] += _box_iou(result.mask[z], truth[z])
                c["box_slices"] += 1.0
        counts[k] = c
    return counts


def add_counts(total: dict[int, dict[str, float]], counts: dict[int, dict[str, float]]) -> None:
    """Sum one volume's counts into `total` (in place)."""
    for k, c in counts.items():
        into = total.setdefault(k, dict.fromkeys(COUNTS, 0.0))
        for key, value in c.items():
            into[key] += value


def rates(total: dict[int, dict[str, float]]) -> dict[str, float]:
    """{"prompt_recall_k", "prompt_precision_k", "prompt_box_iou_k"} (NaN where undefined)."""
    out = {}
    for k, c in sorted(total.items()):
        out[f"prompt_recall_{k}"] = c["objects_hit"] / c["objects"] if c["objects"] else float("nan")
        out[f"prompt_precision_{k}"] = c["prompts_on_target"] / c["prompts"] if c["prompts"] else float("nan")
        out[f"prompt_box_iou_{k}"] = c["box_iou_sum"] / c["box_slices"] if c["box_slices"] else float("nan")
    return out


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the tight boxes of two (H, W) masks; 0 when either is empty."""
    if not a.any() or not b.any():
        return 0.0
    (ay0, ax0), (ay1, ax1) = np.argwhere(a).min(0), np.argwhere(a).max(0) + 1
    (by0, bx0), (by1, bx1) = np.argwhere(b).min(0), np.argwhere(b).max(0) + 1
    inter = max(0, min(ay1, by1) - max(ay0, by0)) * max(0, min(ax1, bx1) - max(ax0, bx0))
    union = (ay1 - ay0) * (ax1 - ax0) + (by1 - by0) * (bx1 - bx0) - inter
    return float(inter / union)
