"""Training losses on clips of consecutive slices (`2d_memory`, issue 14; not wired into training yet).

The 2d step's losses (method/steps.py) applied slice by slice to clips segmented through the slice
memory (networks/clip.py): labeled clips carry ground-truth prompts on their first slice only (the
later slices must come from memory); unlabeled clips get the teacher's pseudo labels from the weak
clip, segmented with its own memory, and the student learns them on the strong clip. Not yet in
this first version: CutMix and DFE on clips (the 2d step's), and PCSW's prompts for unlabeled clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sss_auto.method.losses import dice_ce_loss
from sss_auto.method.steps import SSLSettings, labeled_loss, passes
from sss_auto.networks.clip import segment_clip
from sss_auto.networks.model import SSSNet
from sss_auto.networks.prompts import Prompts


@dataclass
class ClipBatch:
    """Clips (B, L, C, H, W) with their slices' volume indices (B, L); labeled ones with labels (B, L, H, W)
    and first-slice prompts; unlabeled ones as a weak view and a strong view of the same slices."""

    x_l: torch.Tensor
    y_l: torch.Tensor
    prompts_l: Prompts
    index_l: torch.Tensor
    x_w: torch.Tensor | None = None
    x_s: torch.Tensor | None = None
    prompts_u: Prompts | None = None
    index_u: torch.Tensor | None = None


@dataclass
class ClipLosses:
    """L, its parts, and the pseudo labels (B, L, H, W) with their confidence mask (None without unlabeled clips)."""

    loss: torch.Tensor
    loss_l: torch.Tensor
    loss_u: torch.Tensor | None = None
    y_hat: torch.Tensor | None = None
    confident: torch.Tensor | None = None


def clip_labeled_loss(b: ClipBatch, student: SSSNet, generator: torch.Generator | None = None) -> torch.Tensor:
    """The 2d labeled loss averaged over the slices of the labeled clips."""
    outputs = segment_clip(student, b.x_l, b.prompts_l, b.index_l, sample=student.training, generator=generator)
    return torch.stack([labeled_loss(out.coarse, out.fused, b.y_l[:, t]) for t, out in enumerate(outputs)]).mean()


def clip_losses(b: ClipBatch, student: SSSNet, teacher: SSSNet | None = None, ssl: SSLSettings = SSLSettings(),
                generator: torch.Generator | None = None) -> ClipLosses:
    """Labeled loss, and with unlabeled clips and a teacher the weak-to-strong loss, per slice.

    The teacher segments the weak clip (no gradient; memories read deterministically), its confident
    per-slice argmax is the pseudo label of the same slice of the strong clip, which the student
    segments with its own memory.
    """
    loss_l = clip_labeled_loss(b, student, generator)
    if teacher is None or b.x_w is None:
        return ClipLosses(loss_l, loss_l)
    with torch.no_grad():
        weak = segment_clip(teacher, b.x_w, b.prompts_u, b.index_u)
        probs = torch.stack([out.fused.float().softmax(1) for out in weak], dim=1)  # (B, L, K+1, H, W)
        conf, y_hat = probs.max(2)
    strong = segment_clip(student, b.x_s, b.prompts_u, b.index_u, sample=student.training, generator=generator)
    confident = passes(conf, y_hat, ssl.confidence)
    loss_u = torch.stack([dice_ce_loss(out.fused, y_hat[:, t], confident[:, t], ssl.class_balanced_ce)
                          for t, out in enumerate(strong)]).mean()
    loss = (1 - ssl.unlabeled_weight) * loss_l + ssl.unlabeled_weight * loss_u
    return ClipLosses(loss, loss_l, loss_u, y_hat, confident)
