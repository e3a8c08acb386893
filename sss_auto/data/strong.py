"""Strong views drawn on top of a weak view: photometric jitter, blur, noise, and CutMix in the batch.

Photometric changes keep the geometry, so the weak view's prompts serve the strong views; CutMix
pastes a box from a partner sample, and the pseudo labels are mixed with the same box. The partner is
another unlabeled sample (UniMatch), or a labeled one whose labels fill the box (plans
`training.cutmix_source: labeled`; the labeled-into-unlabeled half of BCP, Bai et al., CVPR 2023: a
labeled region in an unlabeled scan's context, supervised by its ground truth). BCP's other half
(`labeled_context`): a labeled slice is the context, with its labels, and an always-drawn box of 2/3 of
each side holds the strong unlabeled view and its pseudo labels (`cutmix_source: bidirectional`).
All randomness comes from the `torch.Generator` passed in (seeded per epoch by the loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CUTMIX_PROBABILITY = 0.5
CUTMIX_AREA = (0.02, 0.4)
CUTMIX_ASPECT = (0.3, 1 / 0.3)
BCP_BOX_SIDE = 2 / 3  # BCP's copy-paste box: this share of each side, always drawn


@dataclass(frozen=True)
class PhotometricRanges:
    """Ranges of the intensity jitter of a strong view (applied with probability 0.8)."""

    gamma: tuple[float, float]
    contrast: tuple[float, float]
    brightness: float  # ± share of the image's intensity span


# "full": UniMatch's strength; "mild": a fifth of it, for intensities that carry the label (CT in HU)
STRENGTHS = {"full": PhotometricRanges((0.7, 1.5), (0.75, 1.25), 0.1),
             "mild": PhotometricRanges((0.93, 1.1), (0.95, 1.05), 0.02)}


@dataclass
class StrongView:
    """A strong view: images (B, C, H, W); `mix` bool (B, H, W) where pixels come from `partner[b]` — of the
    same batch, or of the labeled batch when `partner_labels` (B, H, W) holds that partner's labels."""

    x: torch.Tensor
    mix: torch.Tensor
    partner: torch.Tensor
    partner_labels: torch.Tensor | None = None

    def mix_targets(self, labels: torch.Tensor, confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix pseudo labels and their confidences (B, H, W) the way the images were mixed (a labeled
        partner's labels with confidence 1)."""
        if self.partner_labels is None:
            return torch.where(self.mix, labels[self.partner], labels), torch.where(self.mix, confidence[self.partner],
                                                                                   confidence)
        return (torch.where(self.mix, self.partner_labels.to(labels.dtype), labels),
                confidence.masked_fill(self.mix, 1.0))


def _uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float, device) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * (high - low) + low).to(device)


def photometric(x: torch.Tensor, generator: torch.Generator, strength: str = "full") -> torch.Tensor:
    """Per-sample brightness/contrast/gamma jitter (p=0.8, ranges from STRENGTHS), Gaussian blur (p=0.5) and noise (p=0.5)."""
    ranges = STRENGTHS[strength]
    batch, device = x.shape[0], x.device
    shape = (batch, 1, 1, 1)
    apply = (torch.rand(shape, generator=generator) < 0.8).to(device)
    low = x.amin((1, 2, 3), keepdim=True)
    span = (x.amax((1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
    unit = (x - low) / span
    gamma = _uniform(generator, shape, *ranges.gamma, device)
    unit = unit.clamp(0, 1) ** gamma
    unit = ((unit - 0.5) * _uniform(generator, shape, *ranges.contrast, device) + 0.5
            + _uniform(generator, shape, -ranges.brightness, ranges.brightness, device))
    x = torch.where(apply, unit * span + low, x)
    sigma = _uniform(generator, (batch,), 0.1, 1.5, device)
    blurred = torch.stack([_blur(x[b], float(sigma[b])) for b in range(batch)])
    x = torch.where((torch.rand(shape, generator=generator) < 0.5).to(device), blurred, x)
    noise = torch.randn(x.shape, generator=generator).to(device) * _uniform(generator, shape, 0.0, 0.1, device) * span
    return torch.where((torch.rand(shape, generator=generator) < 0.5).to(device), x + noise, x)


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = image.shape[0]
    out = F.conv2d(F.pad(image[None], (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out[0]


def cutmix_masks(batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """bool (B, H, W): one random box per sample (with probability 0.5), else all False."""
    masks = torch.zeros(batch, height, width, dtype=torch.bool)
    for b in range(batch):
        if torch.rand((), generator=generator) >= CUTMIX_PROBABILITY:
            continue
        area = float(_uniform(generator, (), *CUTMIX_AREA, "cpu")) * height * width
        aspect = float(_uniform(generator, (), *CUTMIX_ASPECT, "cpu"))
        h = min(height, max(1, int(round((area * aspect) ** 0.5))))
        w = min(width, max(1, int(round((area / aspect) ** 0.5))))
        _place_box(masks[b], h, w, generator)
    return masks


def _place_box(mask: torch.Tensor, h: int, w: int, generator: torch.Generator) -> None:
    """Set an h × w box of `mask` (H, W) at a random position."""
    y0 = int(torch.randint(0, mask.shape[0] - h + 1, (), generator=generator))
    x0 = int(torch.randint(0, mask.shape[1] - w + 1, (), generator=generator))
    mask[y0:y0 + h, x0:x0 + w] = True


def bcp_masks(batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """bool (B, H, W): one box of BCP_BOX_SIDE of each side per sample, at a random position."""
    h, w = max(1, round(height * BCP_BOX_SIDE)), max(1, round(width * BCP_BOX_SIDE))
    masks = torch.zeros(batch, height, width, dtype=torch.bool)
    for b in range(batch):
        _place_box(masks[b], h, w, generator)
    return masks


def strong_view(x_w: torch.Tensor, generator: torch.Generator, strength: str = "full",
                labeled: tuple[torch.Tensor, torch.Tensor] | None = None, labeled_context: bool = False) -> StrongView:
    """Photometric augmentation of the weak view, then CutMix with a random partner in the batch, or with a
    random labeled slice of `labeled` = (x_l (B_l, C, H, W), y_l (B_l, H, W)), pasted as the loader made it.

    With `labeled_context` the labeled slice fills everything but a BCP box (bcp_masks), which keeps the
    strong view: `mix` is then the box's complement.
    """
    if labeled_context and labeled is None:
        raise ValueError("labeled_context needs the labeled batch")
    batch, _, height, width = x_w.shape
    x = photometric(x_w, generator, strength)
    if labeled is None:
        partner = torch.randperm(batch, generator=generator).to(x_w.device)
        source, partner_labels = x, None
    else:
        x_l, y_l = labeled
        partner = torch.randint(len(x_l), (batch,), generator=generator).to(x_w.device)
        source, partner_labels = x_l, y_l[partner]
    if labeled_context:
        mix = ~bcp_masks(batch, height, width, generator).to(x_w.device)
    else:
        mix = cutmix_masks(batch, height, width, generator).to(x_w.device)
    return StrongView(torch.where(mix[:, None], source[partner], x), mix, partner, partner_labels)


def jitter(x: torch.Tensor, generator: torch.Generator, strength: str = "full") -> torch.Tensor:
    """The strong views' photometric jitter of slices (B, C, H, W) or clips (B, L, C, H, W), drawn per slice.

    On weak clips it is their strong view: no CutMix (mixing two clips would cut through the slice
    memory's object, method/clip_steps.py).
    """
    return photometric(x.flatten(0, x.dim() - 4), generator, strength).view_as(x)


def augment_labeled(x_l: torch.Tensor, y_l: torch.Tensor, mode: str, generator: torch.Generator,
                    strength: str = "full") -> tuple[torch.Tensor, torch.Tensor]:
    """Labeled images and labels as the loader made them ("standard"), with the strong views' photometric
    jitter on the images ("strong"; clips jittered per slice), or mixed among the batch ("copy_paste": with
    the CutMix draw, a box of another labeled slice with its labels; slices only — the labeled half of
    BCP's copy-paste pre-training). Prompts are not mixed (as for CutMix, method.md).
    """
    if mode == "standard":
        return x_l, y_l
    if mode == "strong":
        return jitter(x_l, generator, strength), y_l
    if mode != "copy_paste":
        raise ValueError(f"labeled augmentation {mode!r} is not one of standard, strong, copy_paste")
    if x_l.dim() != 4:
        raise ValueError("copy_paste mixes single slices (B, C, H, W); clips are not mixed")
    partner = torch.randperm(len(x_l), generator=generator).to(x_l.device)
    mix = cutmix_masks(len(x_l), *x_l.shape[-2:], generator).to(x_l.device)
    return torch.where(mix[:, None], x_l[partner], x_l), torch.where(mix, y_l[partner], y_l)
