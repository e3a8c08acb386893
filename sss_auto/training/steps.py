"""One training iteration, supervised or SSS, as pure functions of a batch and the modules.

Names follow UniMatch's code: `x_l`/`y_l` labeled images/labels, `x_w` weak unlabeled view,
`x_s` strong views, `f_*` features, `y_hat` pseudo label, `conf` its confidence, `logits` (never
probabilities unless called `probs`). backward(), clipping, the EMA update, AMP and DDP live in
loop.py, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sss_auto.data.loader import TrainBatch
from sss_auto.data.strong import StrongView
from sss_auto.networks.model import SSSNet
from sss_auto.training.config import COARSE_WEIGHT, SUPERVISED_WEIGHT
from sss_auto.training.losses import dice_ce_loss


@dataclass
class StepOutput:
    """The loss to back-propagate and scalar metrics to log."""

    loss: torch.Tensor
    metrics: dict[str, float]


def labeled_loss(student: SSSNet, b: TrainBatch) -> torch.Tensor:
    """L_l = ½ DiceCE(coarse) + ½ DiceCE(fused with jittered GT prompts)."""
    out = student(b.x_l, b.prompts_l)
    return COARSE_WEIGHT * dice_ce_loss(out.coarse, b.y_l) + (1 - COARSE_WEIGHT) * dice_ce_loss(out.fused, b.y_l)


def supervised_step(b: TrainBatch, student: SSSNet) -> StepOutput:
    """Labeled loss only (warm-up epochs and the supervised-only ablation)."""
    loss_l = labeled_loss(student, b)
    return StepOutput(loss_l, {"loss": loss_l.item(), "loss_l": loss_l.item()})


def sss_step(b: TrainBatch, student: SSSNet, teacher: SSSNet, views: list[StrongView], confidence: float) -> StepOutput:
    """Supervised loss + weak-to-strong loss on unlabeled slices (SSS_METHOD "One training iteration")."""
    loss_l = labeled_loss(student, b)
    size = tuple(b.x_w.shape[-2:])
    with torch.no_grad():
        f_w = teacher.encode(b.x_w)
        conf, y_hat = teacher.decode(f_w, b.prompts_u, size).fused.float().softmax(1).max(1)  # (B, H, W) each
    losses_u = []
    for view in views:  # s1, s2; each with its own CutMix boxes
        y_mix, conf_mix = view.mix_targets(y_hat, conf)
        f_s = student.dfe(f_w, student.encode(view.x))
        logits = student.decode(f_s, b.prompts_u, size).fused
        losses_u.append(dice_ce_loss(logits, y_mix, valid=conf_mix >= confidence))
    loss_u = sum(losses_u) / len(losses_u)
    loss = SUPERVISED_WEIGHT * loss_l + (1 - SUPERVISED_WEIGHT) * loss_u
    metrics = {"loss": loss.item(), "loss_l": loss_l.item(), "loss_u": loss_u.item(),
               "mask_ratio": float((conf >= confidence).float().mean())}
    return StepOutput(loss, metrics)
