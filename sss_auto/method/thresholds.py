"""Confidence thresholds of the pseudo labels: one global τ, or one per class that adapts to how sure the teacher is.

With one global τ = 0.95, almost only background passes on lesion data: a small class is rarely
predicted that confidently, so its pixels are masked out of the unlabeled loss while every
confident background pixel teaches "background" (documentation/method.md, "Small classes").
"class_adaptive" gives each class c the threshold

    τ_c = τ · μ_c / max_k μ_k,

where μ_c is an exponential moving average of the mean confidence of the pixels the teacher
predicts as c: FreeMatch's self-adaptive class thresholds (Wang et al., ICLR 2023) normalised by the
most confident class, measured on each class's own predictions, because per-pixel class
frequencies in segmentation differ by orders of magnitude. The most confident class (background)
keeps τ; a class the teacher is unsure of gets a lower bar, which rises as the teacher grows sure.
"""

from __future__ import annotations

import torch

from planners.plans import CONFIDENCE_MODES
from sss_auto.method.running_mean import fold_into

MOMENTUM = 0.999  # per SSL iteration, as FreeMatch's EMA


class ConfidenceThresholds:
    """Per-class thresholds for a batch of pseudo labels, with the running statistics behind them."""

    def __init__(self, mode: str, tau: float, num_classes: int) -> None:
        if mode not in CONFIDENCE_MODES:
            raise ValueError(f"unknown threshold mode {mode!r}; expected one of {', '.join(CONFIDENCE_MODES)}")
        self.mode, self.tau, self.num_classes = mode, tau, num_classes
        self.mean_confidence = torch.full((num_classes,), float("nan"), dtype=torch.float64)

    def values(self) -> torch.Tensor:
        """float64 (K+1,) thresholds; τ for every class in "global" mode and before a class has been seen."""
        unseen = torch.isnan(self.mean_confidence)
        if self.mode == "global" or bool(unseen.all()):
            return torch.full((self.num_classes,), self.tau, dtype=torch.float64)
        top = self.mean_confidence[~unseen].max()
        return torch.where(unseen, torch.full_like(self.mean_confidence, self.tau), self.tau * self.mean_confidence / top)

    def per_pixel(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Thresholds (B, H, W) for pseudo labels y_hat (B, H, W) int64."""
        return self.values().to(y_hat.device, torch.float32)[y_hat]

    @torch.no_grad()
    def update(self, conf: torch.Tensor, y_hat: torch.Tensor) -> None:
        """Fold one batch of teacher confidences (B, H, W) and pseudo labels into μ_c (classes present only)."""
        if self.mode == "global":
            return
        flat, labels = conf.reshape(-1).double().cpu(), y_hat.reshape(-1).cpu()
        count = torch.bincount(labels, minlength=self.num_classes).double()
        total = torch.bincount(labels, weights=flat, minlength=self.num_classes)
        fold_into(self.mean_confidence, total / count.clamp_min(1), count > 0, MOMENTUM)

    def metrics(self) -> dict[str, float]:
        """{"tau_k": τ_k} of the foreground classes, for the log (class_adaptive only)."""
        if self.mode == "global":
            return {}
        return {f"tau_{k}": float(v) for k, v in enumerate(self.values()) if k > 0}

    def state_dict(self) -> dict:
        return {"mode": self.mode, "tau": self.tau, "mean_confidence": self.mean_confidence.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.mean_confidence = state["mean_confidence"].clone().double()
