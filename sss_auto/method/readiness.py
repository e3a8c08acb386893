"""Unready classes: no pseudo labels before the labeled data has taught every class.

A small rare class is learned late (on the rare-class demo supervised training found EDH only after
about 3,000 iterations; at 2,000 its test Dice was 0.04), while semi-supervision starts earlier. Until
then the teacher's pseudo labels for it are guesses, and every pixel where it really is gets a
confident "background" or a wrong class: the unlabeled loss teaches the student to keep missing it
(confirmation bias), which is how weak-to-strong kept EDH at 0.008 while supervised-only reached 0.28.

`ClassReadiness` follows, per foreground class, a running Dice of the student's own prediction on
the labeled slices of each step (hard Dice over the batch, only in batches where the class is
present). A class is *ready* once that Dice reaches READY_DICE.

The start gate (plans `training.ssl_start = "ready"`, the default): after the planned warm-up, the
semi-supervised phase starts only once every class present in the fold's labeled training cases is
ready (`waiting_classes` is empty); until then the run stays supervised, and a run whose labeled
fit never gets there stays supervised to the end (logged). Where compute, not labels, limits the
run (the class still being learned when the budget ends), every iteration goes to the labeled
data, as supervised-only training would spend it; where the labeled fit is done early, the rest
of the budget goes to the unlabeled scans.

The per-class gate (plans `training.unready_class_gate`, off by default): once SSL runs, for every
unready class k the unlabeled loss ignores (`unready_mask`):
- the pixels pseudo-labelled k, and
- the pixels where the teacher ranks k highest: the top PLAUSIBLE_MULTIPLE × π_k share of the
  batch's pixels by p_k (π_k: the labeled voxel fraction), whatever their pseudo label,
so a class the network cannot see yet is neither taught in the wrong places nor taught away where it
might be. Ignoring is never turning into background. Plans field `training.unready_class_gate`.
Under torchrun each rank follows the Dice of its own labeled batches (ranks may briefly disagree
on a class near the bar; the gradients are still averaged). The state goes into the checkpoint.
"""

from __future__ import annotations

import torch

from sss_auto.method.running_mean import fold_into

READY_DICE = 0.5
MOMENTUM = 0.98  # per step in which the class is present in the labeled batch
PLAUSIBLE_MULTIPLE = 10.0


def labeled_class_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hard Dice (K+1,) of argmax(logits) (B, K+1, H, W) against target (B, H, W); NaN where the class is absent."""
    num_classes = logits.shape[1]
    prediction = logits.detach().argmax(1).reshape(-1)
    target = target.reshape(-1)
    intersection = torch.bincount(target[prediction == target], minlength=num_classes).double()
    sizes = torch.bincount(prediction, minlength=num_classes).double() + torch.bincount(target, minlength=num_classes).double()
    present = torch.bincount(target, minlength=num_classes) > 0
    dice = 2 * intersection / sizes.clamp_min(1)
    return torch.where(present, dice, torch.full_like(dice, float("nan"))).cpu()


def plausible_shares(voxel_fractions: dict[int, float], num_classes: int, multiple: float = PLAUSIBLE_MULTIPLE) -> torch.Tensor:
    """float64 (K+1,): per foreground class, `multiple` × its labeled voxel fraction (at most 1); background 0."""
    shares = torch.zeros(num_classes, dtype=torch.float64)
    for k, fraction in voxel_fractions.items():
        if 0 < k < num_classes:
            shares[k] = min(1.0, multiple * fraction)
    return shares


def ranked_highest(probabilities: torch.Tensor, classes: list[int], shares: torch.Tensor) -> torch.Tensor:
    """bool (B, H, W): for each class k of `classes`, the top `shares[k]` of the batch's pixels by p_k (union)."""
    ranked = torch.zeros(probabilities[:, 0].shape, dtype=torch.bool, device=probabilities.device)
    for k in classes:
        p_k = probabilities[:, k].reshape(-1).float()
        count = int(round(float(shares[k]) * p_k.numel()))
        if count > 0:
            threshold = torch.topk(p_k, min(count, p_k.numel())).values[-1]
            ranked |= probabilities[:, k] >= threshold
    return ranked


def unready_mask(probabilities: torch.Tensor, y_hat: torch.Tensor, unready: torch.Tensor,
                 shares: torch.Tensor) -> torch.Tensor:
    """bool (B, H, W): pixels the unlabeled loss ignores because of an unready class (module docstring).

    Args:
        probabilities: (B, K+1, H, W) teacher probabilities (as the pseudo labels were taken from them).
        y_hat: int64 (B, H, W) pseudo labels.
        unready: bool (K+1,) classes not learned yet (background never).
        shares: float (K+1,) share of the batch's pixels to ignore per unready class (by p_k rank).
    """
    classes = [k for k in torch.nonzero(unready.cpu()).flatten().tolist() if k != 0]
    ignored = ranked_highest(probabilities, classes, shares)
    for k in classes:
        ignored |= y_hat == k
    return ignored


def background_band_mask(probabilities: torch.Tensor, y_hat: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """bool (B, H, W): background pseudo labels where a foreground class may hide (the foreground band).

    The pixels pseudo-labelled background that, for some foreground class k, rank in the top
    `shares[k]` of the batch by p_k. On the label-bound benchmark the teacher's confident background
    covered 37 % of the IPH and 41 % of the SDH voxels of unseen volumes, and most of those misses
    ranked in the top 10 × π_k by p_k (benchmarks/pseudo_label_quality.py); the unlabeled loss ignores
    them instead of teaching the misses as background. Measured: no gain in test Dice (benchmarks.md).
    """
    return ranked_highest(probabilities, list(range(1, probabilities.shape[1])), shares) & (y_hat == 0)


class ClassReadiness:
    """Running labeled Dice per class, and which classes are not ready for pseudo labels."""

    def __init__(self, voxel_fractions: dict[int, float], num_classes: int) -> None:
        self.num_classes = num_classes
        self.dice = torch.full((num_classes,), float("nan"), dtype=torch.float64)
        self.shares = plausible_shares(voxel_fractions, num_classes)

    def update(self, dice: torch.Tensor) -> None:
        """Fold one labeled batch's per-class Dice (K+1,; NaN: absent) into the running means."""
        dice = dice.double()
        fold_into(self.dice, dice, ~torch.isnan(dice), MOMENTUM)

    def unready(self) -> torch.Tensor:
        """bool (K+1,): foreground classes whose running labeled Dice is below READY_DICE (or never seen)."""
        unready = ~(self.dice >= READY_DICE)  # NaN compares False: never seen is unready
        unready[0] = False
        return unready

    def waiting_classes(self, classes: set[int]) -> list[tuple[int, float]]:
        """(class, running labeled Dice; NaN: not seen yet) of the foreground `classes` that are not ready, sorted."""
        unready = self.unready()
        return [(k, float(self.dice[k])) for k in sorted(classes) if 0 < k < self.num_classes and bool(unready[k])]

    def metrics(self) -> dict[str, float]:
        """{"ready_dice_k": running labeled Dice} of the foreground classes seen, for the log."""
        return {f"ready_dice_{k}": float(v) for k, v in enumerate(self.dice) if k > 0 and not torch.isnan(v)}

    def state_dict(self) -> dict:
        return {"dice": self.dice.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.dice = state["dice"].clone().double()
