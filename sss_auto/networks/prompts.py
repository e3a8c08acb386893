"""Prompts per sample and foreground class: a box and a positive point, in SAM-2's (x, y) pixels."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Prompts:
    """Fixed-size prompt tensors for a batch of B images and K foreground classes.

    Attributes:
        boxes: float32 (B, K, 4) as (x0, y0, x1, y1) in pixels of the network input.
        points: float32 (B, K, 2) as (x, y) in pixels, a positive click inside the object.
        valid: bool (B, K); False means no prompt for that class (its refinement is skipped).
    """

    boxes: torch.Tensor
    points: torch.Tensor
    valid: torch.Tensor

    @classmethod
    def empty(cls, batch: int, num_foreground: int, device: torch.device | str = "cpu") -> Prompts:
        """No prompt for any class."""
        return cls(torch.zeros(batch, num_foreground, 4, device=device), torch.zeros(batch, num_foreground, 2, device=device),
                   torch.zeros(batch, num_foreground, dtype=torch.bool, device=device))

    @classmethod
    def cat(cls, parts: list[Prompts]) -> Prompts:
        """Concatenate along the batch axis (same K in every part)."""
        return cls(torch.cat([p.boxes for p in parts]), torch.cat([p.points for p in parts]),
                   torch.cat([p.valid for p in parts]))

    def to(self, device: torch.device | str) -> Prompts:
        return Prompts(self.boxes.to(device), self.points.to(device), self.valid.to(device))

