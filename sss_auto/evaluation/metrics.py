"""Overlap metrics per class on integer label maps.

A class absent from both reference and prediction has an undefined Dice: it is NaN and left out of
means (nanmean), so empty classes neither reward nor punish a model.
"""

from __future__ import annotations

import numpy as np


def dice_per_class(prediction: np.ndarray, reference: np.ndarray, classes: list[int]) -> dict[int, float]:
    """Dice of each class value; NaN when the class is in neither array."""
    out = {}
    for k in classes:
        p, r = prediction == k, reference == k
        denominator = int(p.sum()) + int(r.sum())
        out[k] = float(2 * np.logical_and(p, r).sum() / denominator) if denominator else float("nan")
    return out
