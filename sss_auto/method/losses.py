"""Cross-entropy + soft Dice on logits, with an optional mask of pixels that count."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTH = 1e-5


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                 class_balanced_ce: bool = False,
                 pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """½·CE + ½·(1 − soft Dice over the foreground classes present in the target), over valid pixels.

    Args:
        logits: (B, K+1, H, W) raw scores.
        target: int64 (B, H, W) class indices.
        valid: bool (B, H, W) pixels that count (e.g. pseudo-label confidence ≥ τ); None = all.
            With no valid pixel the loss is 0 (and still part of the graph).
        class_balanced_ce: the CE is the mean over the classes present in the (valid) target of each
            class's mean pixel CE, instead of the mean over pixels: on pseudo labels that are 98 %
            background, the pixel mean is almost only "predict background here".
        pairs: (second, pair_valid), int64 and bool (B, H, W): pixels taught "one of target and second"
            (partial pseudo labels, `pair_targets` in method/steps.py) by −log(p_target + p_second) in
            the CE, averaged with the valid pixels' CE; they stay out of the Dice. Not with
            class_balanced_ce.

    The Dice is computed over the whole batch per class ("batch Dice") and averaged over the classes
    that have at least one valid target pixel; false positives of absent classes are left to the CE.
    A smoothed Dice of an absent class is ~0 unless the summed probability of that class falls below
    SMOOTH, which rewards driving it to exactly zero: on unlabeled batches (mostly lesion-free slices
    with background pseudo labels) that drove the student and then the EMA teacher to collapse to
    background (documentation/method.md, "Deviations").
    """
    logits = logits.float()
    mask = torch.ones_like(target, dtype=logits.dtype) if valid is None else valid.to(logits.dtype)
    count = mask.sum()
    pixel_ce = F.cross_entropy(logits, target, reduction="none") * mask
    if class_balanced_ce and pairs is not None:
        raise ValueError("pair targets are averaged per pixel; class_balanced_ce has no per-class place for them")
    if class_balanced_ce:
        per_class = torch.zeros(logits.shape[1], dtype=logits.dtype, device=logits.device)
        sizes = per_class.index_add(0, target.reshape(-1), mask.reshape(-1))
        sums = per_class.index_add(0, target.reshape(-1), pixel_ce.reshape(-1))
        present_any = (sizes > 0).to(logits.dtype)
        ce = (sums / sizes.clamp_min(1.0) * present_any).sum() / present_any.sum().clamp_min(1.0)
    elif pairs is not None:
        second, pair_valid = pairs
        pair_mask = pair_valid.to(logits.dtype)
        ce = (pixel_ce.sum() + pair_nll(logits, target, second, pair_mask)) / (count + pair_mask.sum()).clamp_min(1.0)
    else:
        ce = pixel_ce.sum() / count.clamp_min(1.0)
    probs = logits.softmax(1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(logits.dtype)
    m = mask[:, None]
    intersection = (probs * onehot * m).sum((0, 2, 3))
    denominator = ((probs + onehot) * m).sum((0, 2, 3))
    dice = (2 * intersection + SMOOTH) / (denominator + SMOOTH)
    present = ((onehot * m).sum((0, 2, 3)) > 0).to(logits.dtype)
    dice_loss = ((1 - dice) * present).sum() / present.sum().clamp_min(1.0)
    return 0.5 * ce + 0.5 * dice_loss  # no valid pixel: ce = 0 and no class present -> 0


def pair_nll(logits: torch.Tensor, first: torch.Tensor, second: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ over pixels of mask · −log(p_first + p_second): the loss of a label that is one of two classes."""
    log_p = logits.float().log_softmax(1)
    either = torch.logaddexp(log_p.gather(1, first[:, None]), log_p.gather(1, second[:, None]))[:, 0]
    return -(either * mask).sum()


def unlabeled_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, mode: str,
                   pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The unlabeled DiceCE of the plan's `unlabeled_ce` mode.

    pixel: `dice_ce_loss`; class_balanced: its per-class CE; pairs: with `pairs` ("one of two classes");
    foreground: foreground against background only — the foreground classes' probabilities summed
    (`foreground_logits`), so pseudo labels teach where a structure is and the labels alone which one.
    """
    if mode == "foreground":
        return dice_ce_loss(foreground_logits(logits), (target > 0).long(), valid)
    return dice_ce_loss(logits, target, valid, mode == "class_balanced", pairs)


def foreground_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) logits of background and of any foreground class (log-sum-exp of theirs): the same softmax."""
    return torch.stack([logits[:, 0], logits[:, 1:].logsumexp(1)], dim=1)
