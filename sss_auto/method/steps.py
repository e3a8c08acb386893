"""One training iteration, supervised or SSS, as pure functions of a batch and the modules.

Names follow UniMatch's code: `x_l`/`y_l` labeled images/labels, `x_w` weak unlabeled view,
`x_s` strong views, `f_*` features, `y_hat` pseudo label, `conf` its confidence, `logits` (never
probabilities unless called `probs`). backward(), clipping, the EMA update, AMP and DDP live in
sss_auto/training/loop.py, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.plans import ConfigurationPlan, TrainingPlan
from sss_auto.data.batch import TrainBatch
from sss_auto.data.pseudo_label_pool import IGNORE
from sss_auto.data.strong import StrongView
from sss_auto.method.alignment import align
from sss_auto.method.losses import dice_ce_loss, unlabeled_loss
from sss_auto.method.pseudo_labels import pseudo_label_metrics
from sss_auto.method.readiness import background_band_mask, unready_mask
from sss_auto.networks.model import SSSNet
from sss_auto.networks.prompts import Prompts

COARSE_WEIGHT = 0.5  # L_l = ½ coarse + ½ fused


@dataclass
class PseudoLabels:
    """The teacher's side of an SSS step: confidence and label (B, H, W), mean probabilities (K+1,) before alignment."""

    conf: torch.Tensor
    y_hat: torch.Tensor
    mean_probabilities: torch.Tensor


@dataclass
class StepOutput:
    """The loss to back-propagate, scalar metrics to log and, for SSS steps, the pseudo labels."""

    loss: torch.Tensor
    metrics: dict[str, float]
    pseudo_labels: PseudoLabels | None = None
    labeled_logits: torch.Tensor | None = None  # (B_l, K+1, H, W) the student's fused logits on the labeled slices


def labeled_loss(coarse: torch.Tensor, fused: torch.Tensor, y_l: torch.Tensor,
                 valid: torch.Tensor | None = None) -> torch.Tensor:
    """L_l = ½ DiceCE(coarse) + ½ DiceCE(fused with jittered GT prompts), over the `valid` pixels (None: all)."""
    return COARSE_WEIGHT * dice_ce_loss(coarse, y_l, valid) + (1 - COARSE_WEIGHT) * dice_ce_loss(fused, y_l, valid)


def unlabeled_prompts(b: TrainBatch) -> Prompts:
    """The unlabeled slices' prompts, or none (prompts off) in the shape of the labeled ones."""
    return b.prompts_u if b.prompts_u is not None else Prompts.empty(len(b.x_w), b.prompts_l.valid.shape[1], b.x_w.device)


def supervised_step(b: TrainBatch, student: SSSNet) -> StepOutput:
    """Labeled loss only (warm-up epochs and the supervised-only ablation)."""
    out = student(b.x_l, b.prompts_l)
    loss_l = labeled_loss(out.coarse, out.fused, b.y_l)
    return StepOutput(loss_l, {"loss": loss_l.item(), "loss_l": loss_l.item()}, labeled_logits=out.fused)


def self_training_step(b: TrainBatch, student: SSSNet, unlabeled_weight: float) -> StepOutput:
    """Offline self-training (method/self_training.py): labeled loss + the same loss on pseudo-labelled slices.

    `b.x_w` holds the pseudo-labelled slices (already strongly jittered), `b.y_u` their pseudo labels
    (IGNORE where no loss looks); one batched forward; L = (1 − w)·L_l + w·L_u.
    """
    n_l = len(b.x_l)
    out = student(torch.cat([b.x_l, b.x_w]), Prompts.cat([b.prompts_l, unlabeled_prompts(b)]))
    loss_l = labeled_loss(out.coarse[:n_l], out.fused[:n_l], b.y_l)
    valid = b.y_u != IGNORE
    loss_u = labeled_loss(out.coarse[n_l:], out.fused[n_l:], b.y_u.clamp_min(0), valid)
    loss = (1 - unlabeled_weight) * loss_l + unlabeled_weight * loss_u
    metrics = {"loss": loss.item(), "loss_l": loss_l.item(), "loss_u": loss_u.item(),
               "mask_ratio": float(valid.float().mean()),
               **pseudo_label_metrics(b.y_u.clamp_min(0), valid, student.config.num_classes)}
    return StepOutput(loss, metrics, labeled_logits=out.fused[:n_l])


@dataclass
class SSSLosses:
    """The tensors of one SSS iteration: L, its two parts, the pseudo labels, their confidence and mask (B, H, W)."""

    loss: torch.Tensor
    loss_l: torch.Tensor
    loss_u: torch.Tensor
    y_hat: torch.Tensor
    conf: torch.Tensor
    confident: torch.Tensor
    teacher_mean: torch.Tensor  # (K+1,) mean teacher probabilities on the weak views, before alignment
    labeled_logits: torch.Tensor  # (B_l, K+1, H, W) the student's fused logits on the labeled slices
    paired: torch.Tensor | None = None  # bool (B, H, W) weak-view pixels taught as a pair (unlabeled_ce pairs)


@dataclass(frozen=True)
class SSLSettings:
    """How the unlabeled loss is formed.

    Attributes:
        confidence: pseudo-label confidence threshold, one for all classes or float (K+1,) per class.
        dfe_inputs: which features DFE pairs ("strong_pair" | "weak_strong", networks/dfe.py).
        unlabeled_ce: the plan's unlabeled loss mode (`unlabeled_loss` in method/losses.py): pixel,
            class_balanced, pairs (pixels where no class reaches its threshold but the two most likely
            classes, both foreground, do together are taught "one of the two": `foreground_pairs`) or
            foreground (foreground against background only).
        alignment: per-class factors (K+1,) of the teacher's probabilities before pseudo labels are taken
            (distribution alignment, method/alignment.py); None: none.
        unlabeled_weight: w in L = (1 − w)·L_l + w·L_u (SSS_METHOD: ½; smaller during a ramp-up).
        unready: bool (K+1,) classes not learned yet, kept out of the unlabeled loss with the pixels
            the teacher ranks highest for them (`unready_shares`, method/readiness.py); None: no gate.
        band_shares: float (K+1,) per foreground class the share of the batch's pixels, ranked by p_k,
            where background pseudo labels are ignored (the foreground band, method/readiness.py); None: none.
    """

    confidence: float | torch.Tensor = TrainingPlan.confidence_threshold
    dfe_inputs: str = ConfigurationPlan.dfe_inputs
    unlabeled_ce: str = TrainingPlan.unlabeled_ce
    alignment: torch.Tensor | None = None
    unlabeled_weight: float = TrainingPlan.unlabeled_weight  # L = (1 − w)·L_l + w·L_u
    unready: torch.Tensor | None = None
    unready_shares: torch.Tensor | None = None
    band_shares: torch.Tensor | None = None


def passes(conf: torch.Tensor, y_hat: torch.Tensor, thresholds: float | torch.Tensor) -> torch.Tensor:
    """bool (B, H, W): pixels whose confidence reaches the threshold of their pseudo label's class.

    Args:
        thresholds: one τ for every class, or float (K+1,) per class.
    """
    thresholds = torch.as_tensor(thresholds, dtype=conf.dtype, device=conf.device)
    return conf >= (thresholds[y_hat] if thresholds.ndim else thresholds)


def pseudo_labels_of(probs_w: torch.Tensor, ssl: SSLSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(conf, y_hat, conf_loss), each (B, H, W), from the teacher's probabilities (B, K+1, H, W) on weak views.

    The probabilities are aligned to the prior first (`ssl.alignment`); conf_loss is what the confidence
    mask sees: conf, set to 0 where a class not yet learned keeps the pixel out (`ssl.unready`) and
    where a background pseudo label lies in the foreground band (`ssl.band_shares`).
    """
    aligned = align(probs_w, ssl.alignment)
    conf, y_hat = aligned.max(1)
    conf_loss = conf
    if ssl.unready is not None and bool(ssl.unready.any()):
        conf_loss = conf_loss.masked_fill(unready_mask(aligned, y_hat, ssl.unready, ssl.unready_shares), 0.0)
    if ssl.band_shares is not None:
        conf_loss = conf_loss.masked_fill(background_band_mask(aligned, y_hat, ssl.band_shares), 0.0)
    return conf, y_hat, conf_loss


def foreground_pairs(probs_w: torch.Tensor, ssl: SSLSettings, conf_loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(second, pair_conf), each (B, H, W): the teacher's second most likely class after alignment and
    p_first + p_second where both are foreground classes (0 elsewhere and where `conf_loss` keeps the
    pixel out). A pixel split between two lesion classes that look alike then still teaches "lesion
    here" instead of nothing, and leaves which lesion to the labeled slices."""
    top = align(probs_w, ssl.alignment).topk(2, dim=1)
    both_foreground = (top.indices > 0).all(1) & (conf_loss > 0)
    return top.indices[:, 1], torch.where(both_foreground, top.values.sum(1), torch.zeros_like(conf_loss))


def pair_targets(second: torch.Tensor, pair_conf: torch.Tensor, y_hat: torch.Tensor, valid: torch.Tensor,
                 thresholds: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(second, pair_valid) for `dice_ce_loss`: the pixels not valid on their own whose pair reaches the
    threshold of the first class (and whose second class differs: pasted labeled boxes have none)."""
    return second, ~valid & (second != y_hat) & passes(pair_conf, y_hat, thresholds)


def unlabeled_view_loss(logits: torch.Tensor, view: StrongView, y_hat: torch.Tensor, conf_loss: torch.Tensor,
                        pairs: tuple[torch.Tensor, torch.Tensor] | None, ssl: SSLSettings) -> torch.Tensor:
    """The unlabeled loss of one strong view: its pseudo labels (and pairs) mixed the way its image was."""
    y_mix, conf_mix = view.mix_targets(y_hat, conf_loss)
    valid = passes(conf_mix, y_mix, ssl.confidence)
    mixed_pairs = None if pairs is None else pair_targets(*view.mix_targets(*pairs), y_mix, valid, ssl.confidence)
    return unlabeled_loss(logits, y_mix, valid, ssl.unlabeled_ce, mixed_pairs)


def sss_losses(b: TrainBatch, student: SSSNet, teacher: SSSNet, views: list[StrongView],
               ssl: SSLSettings = SSLSettings(), generator: torch.Generator | None = None,
               weak_order: torch.Tensor | None = None) -> SSSLosses:
    """Supervised loss + weak-to-strong loss on unlabeled slices (SSS_METHOD "One training iteration").

    The student sees the labeled slices and every strong view in one batched forward (no batch
    statistics anywhere in the network, so the losses equal those of separate forwards); DFE then
    enhances the strong views' features (`dfe_inputs`, see sss_auto/networks/dfe.py). Returns
    tensors, reads no loss value: the planner runs it on the meta device to estimate memory.

    Args:
        generator: draws DFE's channel-dropout partner of a single strong view.
        weak_order: the swap diagnostic only: DFE's weak input taken from these samples (another
            image) while the pseudo labels stay those of the real weak views.
    """
    size = tuple(b.x_w.shape[-2:])
    n_l, n_u, n_views = len(b.x_l), len(b.x_w), len(views)
    prompts_u = unlabeled_prompts(b)
    with torch.no_grad():
        f_w = teacher.encode(b.x_w)
        probs_w = teacher.decode(f_w, prompts_u, size).fused.float().softmax(1)
        conf, y_hat, conf_loss = pseudo_labels_of(probs_w, ssl)
        pairs = foreground_pairs(probs_w, ssl, conf_loss) if ssl.unlabeled_ce == "pairs" else None
    f_student = student.encode(torch.cat([b.x_l] + [view.x for view in views]))
    f_views = [[f[n_l + k * n_u:n_l + (k + 1) * n_u] for f in f_student] for k in range(n_views)]
    f_dfe_weak = f_w if weak_order is None else [f[weak_order] for f in f_w]
    f_views = student.dfe.enhance(f_views, f_dfe_weak, ssl.dfe_inputs, generator)
    features = [torch.cat([f[:n_l]] + [view[i] for view in f_views]) for i, f in enumerate(f_student)]
    out = student.decode(features, Prompts.cat([b.prompts_l] + [prompts_u] * n_views), size)
    loss_l = labeled_loss(out.coarse[:n_l], out.fused[:n_l], b.y_l)
    loss_u = sum(unlabeled_view_loss(logits, view, y_hat, conf_loss, pairs, ssl)  # s1, s2; each its own CutMix boxes
                 for view, logits in zip(views, out.fused[n_l:].split(n_u))) / n_views
    loss = (1 - ssl.unlabeled_weight) * loss_l + ssl.unlabeled_weight * loss_u
    confident = passes(conf_loss, y_hat, ssl.confidence)
    paired = None if pairs is None else pair_targets(*pairs, y_hat, confident, ssl.confidence)[1]
    return SSSLosses(loss, loss_l, loss_u, y_hat, conf, confident, probs_w.mean((0, 2, 3)), out.fused[:n_l], paired)


def sss_step(b: TrainBatch, student: SSSNet, teacher: SSSNet, views: list[StrongView],
             ssl: SSLSettings = SSLSettings(), generator: torch.Generator | None = None) -> StepOutput:
    """`sss_losses` with its scalar metrics (loss, loss_l, loss_u, mask ratio, per-class pseudo-label shares)."""
    return step_output(sss_losses(b, student, teacher, views, ssl, generator), student.config.num_classes)


def step_output(t: SSSLosses, num_classes: int) -> StepOutput:
    """The StepOutput of an SSS step's tensors: loss, loss_l, loss_u, mask ratio (and pair ratio), per-class
    pseudo-label shares."""
    metrics = {"loss": t.loss.item(), "loss_l": t.loss_l.item(), "loss_u": t.loss_u.item(),
               "mask_ratio": float(t.confident.float().mean()), **pseudo_label_metrics(t.y_hat, t.confident, num_classes)}
    if t.paired is not None:
        metrics["pair_ratio"] = float(t.paired.float().mean())
    return StepOutput(t.loss, metrics, PseudoLabels(t.conf, t.y_hat, t.teacher_mean), t.labeled_logits)


@torch.no_grad()
def swap_diagnostic(b: TrainBatch, student: SSSNet, teacher: SSSNet, views: list[StrongView],
                    ssl: SSLSettings) -> dict[str, float]:
    """Does the student read the weak features? The unlabeled loss with DFE's weak input from another image.

    Same batch, views, pseudo labels and dropout draws; only the weak features DFE may see are
    those of the next sample in the batch. `swap_rise` = loss_u(swapped) − loss_u(real): clearly
    positive when the student's strong-view prediction leans on the pseudo label's own features;
    exactly 0 when no weak feature reaches it ("strong_pair", or no DFE).
    """
    if len(b.x_w) < 2:
        return {}
    real = sss_losses(b, student, teacher, views, ssl, torch.Generator().manual_seed(0)).loss_u
    order = torch.roll(torch.arange(len(b.x_w), device=b.x_w.device), 1)
    swapped = sss_losses(b, student, teacher, views, ssl, torch.Generator().manual_seed(0), weak_order=order).loss_u
    return {"swap_loss_u": float(swapped), "swap_rise": float(swapped - real)}
