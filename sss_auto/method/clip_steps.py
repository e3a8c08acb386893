"""Training steps on clips of consecutive slices (the volumetric configuration `2d_memory`).

The 2d step's losses (method/steps.py) applied slice by slice to clips segmented through the slice
memory (networks/clip.py): labeled clips carry ground-truth prompts on their first slice only (the
later slices must come from memory); unlabeled clips get the teacher's pseudo labels from the weak
clip, segmented with its own memory (its first slice prompted from the PCSW bank), and the student
learns them on the strong clip (one strong view, photometric per slice, data/strong.py `jitter`).
The pseudo labels go through the 2d step's alignment, class gate and confidence mask
(`pseudo_labels_of`). DFE, when the plan has levels, enhances each strong slice's features as the 2d
step does a single strong view: paired with a channel-dropout copy of its own features
(`strong_pair`; no feature of the weak clip reaches the student's prediction). Not on clips: CutMix
(mixing two clips would cut through the object the memory follows) and `weak_strong` DFE.
"""

from __future__ import annotations

import torch

from sss_auto.data.batch import ClipBatch
from sss_auto.method.losses import unlabeled_loss
from sss_auto.method.steps import (SSLSettings, SSSLosses, StepOutput, foreground_pairs, labeled_loss, pair_targets, passes,
                                   pseudo_labels_of, step_output)
from sss_auto.networks.clip import segment_clip
from sss_auto.networks.model import SSSNet


def _slices(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Per-slice tensors (B, ...) of a clip, in clip order -> (B·L, ...) clip-major (as y.flatten(0, 1))."""
    return torch.stack(tensors, dim=1).flatten(0, 1)


def clip_labeled_loss(b: ClipBatch, student: SSSNet, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2d labeled loss averaged over the slices of the labeled clips, and the fused logits (B·L, K+1, H, W)."""
    outputs = segment_clip(student, b.x_l, b.prompts_l, b.index_l, sample=student.training, generator=generator)
    loss = torch.stack([labeled_loss(out.coarse, out.fused, b.y_l[:, t]) for t, out in enumerate(outputs)]).mean()
    return loss, _slices([out.fused for out in outputs])


def _strong_pair_dfe(student: SSSNet, ssl: SSLSettings, generator: torch.Generator | None):
    """DFE of one strong slice with a channel-dropout copy of itself (None: the plan has no DFE levels)."""
    if not student.dfe.levels:
        return None
    if ssl.dfe_inputs != "strong_pair":
        raise ValueError(f"DFE on clips pairs the strong clip with itself (strong_pair); {ssl.dfe_inputs!r} would need "
                         "the teacher's weak features, which no clip step passes")
    return lambda features: student.dfe.enhance([features], None, "strong_pair", generator)[0]


def clip_losses(b: ClipBatch, student: SSSNet, teacher: SSSNet, ssl: SSLSettings = SSLSettings(),
                generator: torch.Generator | None = None) -> SSSLosses:
    """Labeled loss + weak-to-strong loss on unlabeled clips, per slice (pseudo labels etc. flattened to B·L).

    The teacher segments the weak clip (no gradient; memories read deterministically), its confident
    per-slice argmax is the pseudo label of the same slice of the strong clip, which the student
    segments with its own memory. Returns tensors only (the planner runs it on the meta device).
    """
    loss_l, labeled_logits = clip_labeled_loss(b, student, generator)
    with torch.no_grad():
        weak = segment_clip(teacher, b.x_w, b.prompts_u, b.index_u)
        probs_w = _slices([out.fused.float().softmax(1) for out in weak])
        conf, y_hat, conf_loss = pseudo_labels_of(probs_w, ssl)
        pairs = foreground_pairs(probs_w, ssl, conf_loss) if ssl.unlabeled_ce == "pairs" else None
    strong = _slices([out.fused for out in segment_clip(student, b.x_s, b.prompts_u, b.index_u,
                                                         sample=student.training, generator=generator,
                                                         enhance=_strong_pair_dfe(student, ssl, generator))])
    confident = passes(conf_loss, y_hat, ssl.confidence)
    paired = None if pairs is None else pair_targets(*pairs, y_hat, confident, ssl.confidence)
    loss_u = unlabeled_loss(strong, y_hat, confident, ssl.unlabeled_ce, paired)
    loss = (1 - ssl.unlabeled_weight) * loss_l + ssl.unlabeled_weight * loss_u
    return SSSLosses(loss, loss_l, loss_u, y_hat, conf, confident, probs_w.mean((0, 2, 3)), labeled_logits,
                     None if paired is None else paired[1])


def clip_supervised_step(b: ClipBatch, student: SSSNet) -> StepOutput:
    """Labeled clips only (warm-up epochs and the supervised-only ablation)."""
    loss_l, logits = clip_labeled_loss(b, student)
    return StepOutput(loss_l, {"loss": loss_l.item(), "loss_l": loss_l.item()}, labeled_logits=logits)


def clip_sss_step(b: ClipBatch, student: SSSNet, teacher: SSSNet, ssl: SSLSettings = SSLSettings(),
                  generator: torch.Generator | None = None) -> StepOutput:
    """`clip_losses` with the 2d SSS step's metrics."""
    return step_output(clip_losses(b, student, teacher, ssl, generator), student.config.num_classes)
