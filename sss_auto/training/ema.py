"""The EMA teacher: a frozen copy of the student updated as an exponential moving average."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    """A copy of the student that never receives gradients."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def ema_decay(iteration: int, max_decay: float) -> float:
    """min(1 − 1/(t+1), max_decay): the teacher follows closely at first, then averages."""
    return min(1.0 - 1.0 / (iteration + 1), max_decay)


@torch.no_grad()
def update_teacher(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher ← decay·teacher + (1 − decay)·student for parameters; buffers are copied."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.lerp_(s.detach().to(t.dtype), 1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)
