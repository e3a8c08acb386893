"""One training batch as the step functions see it (built by the loader, or synthetically by the memory estimate)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sss_auto.networks.prompts import Prompts


@dataclass
class TrainBatch:
    """x_l float32 (B, C, P, P), y_l int64 (B, P, P), prompts_l; x_w weak unlabeled views and prompts_u (or None);
    y_u int64 (B, P, P) pseudo labels of the unlabeled slices in offline self-training (IGNORE = −1), else None."""

    x_l: torch.Tensor
    y_l: torch.Tensor
    prompts_l: Prompts
    x_w: torch.Tensor | None
    prompts_u: Prompts | None
    y_u: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> TrainBatch:
        move = (lambda t: t.to(device, non_blocking=True) if t is not None else None)
        return TrainBatch(move(self.x_l), move(self.y_l), self.prompts_l.to(device), move(self.x_w),
                          self.prompts_u.to(device) if self.prompts_u is not None else None, move(self.y_u))


@dataclass
class ClipBatch:
    """Clips (B, L, C, H, W) with their slices' volume indices (B, L); labeled ones with labels (B, L, H, W)
    and first-slice prompts; unlabeled ones as a weak view (and, in the step, a strong view) of the same slices."""

    x_l: torch.Tensor
    y_l: torch.Tensor
    prompts_l: Prompts
    index_l: torch.Tensor
    x_w: torch.Tensor | None = None
    x_s: torch.Tensor | None = None
    prompts_u: Prompts | None = None
    index_u: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> ClipBatch:
        move = (lambda t: t.to(device, non_blocking=True) if t is not None else None)
        return ClipBatch(move(self.x_l), move(self.y_l), self.prompts_l.to(device), move(self.index_l), move(self.x_w),
                         move(self.x_s), self.prompts_u.to(device) if self.prompts_u is not None else None,
                         move(self.index_u))
