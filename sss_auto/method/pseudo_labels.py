"""What the pseudo labels hold, per class, against the labeled prior: the signal that shows a class vanishing.

Per SSL iteration `pseudo_label_metrics` counts, for every class k, the share of weak-view pixels
whose pseudo label is k (`pl_k`), the share that is k *and* passes the confidence mask (`plc_k`),
and the share of weak slices with a confident k (`pls_k`). At the end of an epoch
`summarize_epoch` turns the epoch means into the per-class mask ratio on class-k pixels
(`mask_ratio_k` = plc_k / pl_k; the overall mask ratio is almost all confident background) and
`vanished_classes` names the foreground classes whose pseudo labels fell far below the labeled prior
(the fingerprint's voxel fraction), which is how semi-supervision erases a small rare class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.fingerprint import Fingerprint

VANISHED_SHARE = 0.1  # a class "vanishes" when its pseudo-label share is below 10 % of its labeled voxel fraction


@dataclass(frozen=True)
class ClassPrior:
    """How common a class is in the labeled data (fingerprint): share of voxels and of z-slices."""

    voxel_fraction: float
    slice_presence_rate: float


def priors_from_fingerprint(fingerprint: Fingerprint) -> dict[int, ClassPrior]:
    """Foreground class value -> labeled prior (classes without a recorded prior are left out)."""
    return {int(value): ClassPrior(stats.voxel_fraction, stats.slice_presence_rate)
            for value, stats in fingerprint.classes.items()
            if stats.voxel_fraction is not None and stats.slice_presence_rate is not None}


def pseudo_label_metrics(y_hat: torch.Tensor, confident: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Per-class shares of one batch of pseudo labels.

    Args:
        y_hat: int64 (B, H, W) pseudo labels of the weak views.
        confident: bool (B, H, W) pixels that pass the confidence mask.
        num_classes: K+1.

    Returns:
        {"pl_k", "plc_k", "pls_k"} for k = 0..K (see the module docstring).
    """
    flat = y_hat.reshape(-1)
    kept = confident.reshape(-1)
    counts = torch.bincount(flat, minlength=num_classes).double() / flat.numel()
    confident_counts = torch.bincount(flat[kept], minlength=num_classes).double() / flat.numel()
    per_slice = torch.nn.functional.one_hot(torch.where(confident, y_hat, num_classes), num_classes + 1)
    slices = per_slice.flatten(1, 2).any(1)[:, :num_classes].double().mean(0)
    metrics = {}
    for k in range(num_classes):
        metrics[f"pl_{k}"] = float(counts[k])
        metrics[f"plc_{k}"] = float(confident_counts[k])
        metrics[f"pls_{k}"] = float(slices[k])
    return metrics


def summarize_epoch(values: dict[str, float], num_classes: int) -> dict[str, float]:
    """Per-class mask ratios from an epoch's mean shares, and the mask ratio on foreground pixels."""
    out = {}
    for k in range(1, num_classes):
        share = values.get(f"pl_{k}")
        if share is not None and share > 0:
            out[f"mask_ratio_{k}"] = values[f"plc_{k}"] / share
    foreground = sum(values.get(f"pl_{k}", 0.0) for k in range(1, num_classes))
    if foreground > 0:
        out["mask_ratio_fg"] = sum(values.get(f"plc_{k}", 0.0) for k in range(1, num_classes)) / foreground
    return out


def vanished_classes(values: dict[str, float], priors: dict[int, ClassPrior]) -> list[tuple[int, float, float]]:
    """(class, confident pseudo-label share, labeled voxel fraction) of every class that has vanished.

    A class vanishes when its confident pseudo-label share over the epoch is below VANISHED_SHARE of
    its labeled voxel fraction (zero included); classes absent from the labeled data never vanish.
    """
    gone = []
    for k, prior in sorted(priors.items()):
        share = values.get(f"plc_{k}")
        if share is not None and prior.voxel_fraction > 0 and share < VANISHED_SHARE * prior.voxel_fraction:
            gone.append((k, share, prior.voxel_fraction))
    return gone
