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
from sss_auto.networks.prompts import Prompts
from sss_auto.training.config import COARSE_WEIGHT, SUPERVISED_WEIGHT
from sss_auto.training.losses import dice_ce_loss
from sss_auto.training.pseudo_labels import pseudo_label_metrics


@dataclass
class StepOutput:
    """The loss to back-propagate and scalar metrics to log."""

    loss: torch.Tensor
    metrics: dict[str, float]


def labeled_loss(coarse: torch.Tensor, fused: torch.Tensor, y_l: torch.Tensor) -> torch.Tensor:
    """L_l = ½ DiceCE(coarse) + ½ DiceCE(fused with jittered GT prompts)."""
    return COARSE_WEIGHT * dice_ce_loss(coarse, y_l) + (1 - COARSE_WEIGHT) * dice_ce_loss(fused, y_l)


def supervised_step(b: TrainBatch, student: SSSNet) -> StepOutput:
    """Labeled loss only (warm-up epochs and the supervised-only ablation)."""
    out = student(b.x_l, b.prompts_l)
    loss_l = labeled_loss(out.coarse, out.fused, b.y_l)
    return StepOutput(loss_l, {"loss": loss_l.item(), "loss_l": loss_l.item()})


@dataclass
class SSSLosses:
    """The tensors of one SSS iteration: L, its two parts, the pseudo labels and their confidence mask (B, H, W)."""

    loss: torch.Tensor
    loss_l: torch.Tensor
    loss_u: torch.Tensor
    y_hat: torch.Tensor
    confident: torch.Tensor


def sss_losses(b: TrainBatch, student: SSSNet, teacher: SSSNet, views: list[StrongView], confidence: float) -> SSSLosses:
    """Supervised loss + weak-to-strong loss on unlabeled slices (SSS_METHOD "One training iteration").

    The student sees the labeled slices and every strong view in one batched forward (no batch
    statistics anywhere in the network, so the losses equal those of separate forwards). Returns
    tensors, reads no loss value: the planner runs it on the meta device to estimate memory.
    """
    size = tuple(b.x_w.shape[-2:])
    n_l, n_u, n_views = len(b.x_l), len(b.x_w), len(views)
    prompts_u = b.prompts_u if b.prompts_u is not None else Prompts.empty(n_u, b.prompts_l.valid.shape[1], b.x_w.device)
    with torch.no_grad():
        f_w = teacher.encode(b.x_w)
        conf, y_hat = teacher.decode(f_w, prompts_u, size).fused.float().softmax(1).max(1)  # (B, H, W) each
    f_student = student.encode(torch.cat([b.x_l] + [view.x for view in views]))
    f_strong = student.dfe(f_w, [f[n_l:] for f in f_student])  # the weak branch runs once for all views
    features = [torch.cat([f[:n_l], s]) for f, s in zip(f_student, f_strong)]
    out = student.decode(features, Prompts.cat([b.prompts_l] + [prompts_u] * n_views), size)
    loss_l = labeled_loss(out.coarse[:n_l], out.fused[:n_l], b.y_l)
    losses_u = []
    for view, logits in zip(views, out.fused[n_l:].split(n_u)):  # s1, s2; each with its own CutMix boxes
        y_mix, conf_mix = view.mix_targets(y_hat, conf)
        losses_u.append(dice_ce_loss(logits, y_mix, valid=conf_mix >= confidence))
    loss_u = sum(losses_u) / n_views
    loss = SUPERVISED_WEIGHT * loss_l + (1 - SUPERVISED_WEIGHT) * loss_u
    return SSSLosses(loss, loss_l, loss_u, y_hat, conf >= confidence)


def sss_step(b: TrainBatch, student: SSSNet, teacher: SSSNet, views: list[StrongView], confidence: float) -> StepOutput:
    """`sss_losses` with its scalar metrics (loss, loss_l, loss_u, mask ratio, per-class pseudo-label shares)."""
    t = sss_losses(b, student, teacher, views, confidence)
    metrics = {"loss": t.loss.item(), "loss_l": t.loss_l.item(), "loss_u": t.loss_u.item(),
               "mask_ratio": float(t.confident.float().mean()),
               **pseudo_label_metrics(t.y_hat, t.confident, student.config.num_classes)}
    return StepOutput(t.loss, metrics)
