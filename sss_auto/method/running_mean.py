"""Per-class running means with NaN for "not seen yet": the one update rule of thresholds, alignment and readiness."""

from __future__ import annotations

import torch


def fold_into(running: torch.Tensor, batch: torch.Tensor, seen: torch.Tensor, momentum: float) -> None:
    """In place: entries seen for the first time (NaN) take the batch value, the other seen ones move by `momentum`."""
    fresh = seen & torch.isnan(running)
    running[fresh] = batch[fresh]
    old = seen & ~fresh
    running[old] = momentum * running[old] + (1 - momentum) * batch[old]
