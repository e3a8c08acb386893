"""Cross-entropy + soft Dice on logits, with an optional mask of pixels that count."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTH = 1e-5


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """½·CE + ½·(1 − soft Dice over foreground classes), averaged over valid pixels.

    Args:
        logits: (B, K+1, H, W) raw scores.
        target: int64 (B, H, W) class indices.
        valid: bool (B, H, W) pixels that count (e.g. pseudo-label confidence ≥ τ); None = all.
            With no valid pixel the loss is 0 (and still part of the graph).

    The Dice is computed over the whole batch per class ("batch Dice"), so a slice without a class
    does not produce a meaningless 0/0 term.
    """
    logits = logits.float()
    mask = torch.ones_like(target, dtype=logits.dtype) if valid is None else valid.to(logits.dtype)
    count = mask.sum()
    ce = (F.cross_entropy(logits, target, reduction="none") * mask).sum() / count.clamp_min(1.0)
    probs = logits.softmax(1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(logits.dtype)
    m = mask[:, None]
    intersection = (probs * onehot * m).sum((0, 2, 3))
    denominator = ((probs + onehot) * m).sum((0, 2, 3))
    dice = (2 * intersection + SMOOTH) / (denominator + SMOOTH)
    return 0.5 * ce + 0.5 * (1 - dice.mean())  # no valid pixel: ce = 0 and every Dice = SMOOTH/SMOOTH = 1
