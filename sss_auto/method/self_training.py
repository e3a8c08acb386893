"""Offline self-training: pseudo labels of whole unlabeled volumes, made once, then learned like labels.

`unlabeled_training = "self_training"` (plans) replaces the online weak-to-strong step: when the
semi-supervised phase starts, the student predicts every unlabeled volume once, with the full
inference (mirror TTA, both passes), and from then on each step is a supervised step on the labeled
slices and on strongly jittered pseudo-labelled slices (ST++, Yang et al., CVPR 2022, without its
reliability ranking). It needs no teacher pass and no second strong view, so on a CPU a step costs
about a supervised step of twice the batch instead of three to four.

A pseudo label is the argmax class; its confidence (the mean TTA probability of that class) decides
whether a pixel counts: `thresholds_from_means` gives class c the bar τ · μ_c / max_k μ_k, with μ_c
the mean confidence of the pool's pixels predicted c (the `class_adaptive` rule of
method/thresholds.py, measured on the whole pool at once). Pixels below their class's bar are
IGNORE, never background; so are, for every class not yet learned on the labeled slices, its
predicted pixels and the pixels ranked highest for it (`unready_mask`), so a rare class the network
cannot see yet is not taught away where it might be.
"""

from __future__ import annotations

import numpy as np
import torch

from sss_auto.method.readiness import unready_mask
from sss_auto.method.thresholds import ConfidenceThresholds


def label_volume(probabilities: np.ndarray, unready: np.ndarray | None = None,
                 shares: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(label int8, confidence float16), each (z, y, x), from mean probabilities (K+1, z, y, x).

    Where a class is unready (bool (K+1,)), its pixels and the top `shares[k]` of the volume's pixels by
    p_k get confidence 0, so no threshold passes them.
    """
    probs = torch.from_numpy(np.ascontiguousarray(probabilities, dtype=np.float32))
    confidence, label = probs.max(0)
    if unready is not None and bool(np.any(unready[1:])):
        ignored = unready_mask(probs[None], label[None], torch.from_numpy(np.asarray(unready, bool)),
                               torch.from_numpy(np.asarray(shares, np.float64)))[0]
        confidence = confidence.masked_fill(ignored, 0.0)
    return label.numpy().astype(np.int8), confidence.numpy().astype(np.float16)


def confidence_sums(label: np.ndarray, confidence: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixel count, summed confidence) per class (K+1,) of one volume's pseudo labels (confidence-0 pixels left out)."""
    kept = confidence > 0
    labels = label[kept].astype(np.int64)
    return (np.bincount(labels, minlength=num_classes).astype(np.float64),
            np.bincount(labels, weights=confidence[kept].astype(np.float64), minlength=num_classes))


def thresholds_from_means(counts: np.ndarray, sums: np.ndarray, tau: float, mode: str) -> np.ndarray:
    """float (K+1,): the `mode` thresholds (method/thresholds.py) of the pool's mean confidence per class (sums / counts)."""
    seen = counts > 0
    means = np.where(seen, sums / np.where(seen, counts, 1), np.nan)
    thresholds = ConfidenceThresholds(mode, tau, len(counts))
    thresholds.load_state_dict({"mean_confidence": torch.from_numpy(means)})
    return thresholds.values().numpy()
