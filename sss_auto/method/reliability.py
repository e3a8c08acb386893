"""Reliable classes: pseudo labels that, on held-out labeled volumes, find more of a class than they teach away.

The label-bound benchmark measured what the teacher's pseudo labels are made of on unseen volumes
(benchmarks/pseudo_label_quality.py): at τ = 0.95, 37 % of the IPH and 41 % of the SDH voxels were
confident background — taught *away* by the unlabeled loss — against 18 % and 8 % pseudo-labelled as
their class (*found*); only IVH was found more than taught away, and IVH was the one class
weak-to-strong improved on the test set. The training Dice cannot tell those classes apart (two
labeled cases are fitted perfectly), but the fold's validation cases can: they are labeled and the
network has not trained on them.

The reliability gate (plans `training.reliability_gate`): after every epoch's validation, per
foreground class c over the validation volumes (voxels pooled),

    found_c = share of c's voxels pseudo-labelled c with confidence ≥ τ_c,
    away_c  = share of c's voxels pseudo-labelled background with confidence ≥ τ_0,

with the thresholds and prior alignment the unlabeled loss uses at that moment. A class with
found_c < away_c, or absent from the validation volumes, is *unreliable*, and the unlabeled loss
treats it as it treats a class not yet learned (`readiness.unready_mask`): its pseudo labels and the
pixels that rank highest for it are ignored, never turned into background. Every weak-to-strong
validation measures found/away (history, progress.png) and warns about such classes, gate or not.

Measured (documentation/benchmarks.md, "Pseudo labels judged on the validation cases"): harmful in the
label-bound regime. On two validation cases every class looked unreliable in every SSL epoch, the
unlabeled loss was left with background pseudo labels only, and test Dice fell 0.055 below
weak-to-strong: keeping a class out while background is still taught around it erases it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sss_auto.method.alignment import align

COUNT_ROWS = ("claimed", "found", "away", "size")  # the rows of reliability_counts


@dataclass(frozen=True)
class PseudoLabelRule:
    """How the unlabeled loss takes pseudo labels right now: per-class thresholds and prior-alignment factors."""

    thresholds: torch.Tensor  # (K+1,) ConfidenceThresholds.values()
    alignment: torch.Tensor | None = None  # (K+1,) PriorAlignment.factors(); None: no alignment


def reliability_counts(probabilities: np.ndarray, reference: np.ndarray, rule: PseudoLabelRule) -> np.ndarray:
    """int64 (len(COUNT_ROWS), K+1): per class the voxels pseudo-labelled as it (claimed), found, taught away,
    and of the class in `reference`.

    Args:
        probabilities: (K+1, Z, Y, X) the network's probabilities of one volume.
        reference: (Z, Y, X) its labels.
        rule: the thresholds and alignment the pseudo labels are taken with.
    """
    num_classes = probabilities.shape[0]
    aligned = align(torch.from_numpy(np.ascontiguousarray(probabilities, np.float32)).transpose(0, 1), rule.alignment)
    confidence, label = aligned.max(1)
    confident = confidence >= rule.thresholds.to(torch.float32)[label]
    truth = torch.from_numpy(np.asarray(reference, np.int64))
    claimed = torch.bincount(label[confident], minlength=num_classes)
    found = torch.bincount(truth[confident & (label == truth)], minlength=num_classes)
    away = torch.bincount(truth[confident & (label == 0)], minlength=num_classes)
    size = torch.bincount(truth.reshape(-1), minlength=num_classes)
    return torch.stack([claimed, found, away, size])[:, :num_classes].numpy()


def reliability_metrics(counts: np.ndarray) -> dict[str, float]:
    """{"found_k", "away_k"}: shares of class k's validation voxels, for the classes present (summed counts)."""
    _, found, away, size = counts
    out = {}
    for k in range(1, len(size)):
        if size[k]:
            out.update({f"found_{k}": float(found[k] / size[k]), f"away_{k}": float(away[k] / size[k])})
    return out


def unreliable_classes(metrics: dict[str, float], num_classes: int) -> torch.Tensor:
    """bool (K+1,): foreground classes found less than taught away, or absent from `reliability_metrics`."""
    unreliable = torch.zeros(num_classes, dtype=torch.bool)
    for k in range(1, num_classes):
        found, away = metrics.get(f"found_{k}"), metrics.get(f"away_{k}")
        unreliable[k] = found is None or away is None or found < away
    return unreliable
