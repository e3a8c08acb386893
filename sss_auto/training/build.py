"""Turn a TrainConfig into modules: student, EMA teacher and optimizer (ablations are config, not subclasses)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from sss_auto.configuration import TrainConfig
from sss_auto.networks.model import SSSNet
from sss_auto.training.ema import make_teacher

logger = logging.getLogger(__name__)


@dataclass
class SSSModules:
    """The student (trained), the EMA teacher (None when supervised only) and the optimizer."""

    student: SSSNet
    teacher: SSSNet | None
    optimizer: torch.optim.Optimizer


def build_modules(config: TrainConfig) -> SSSModules:
    """Build the networks on config.device and an AdamW with an encoder parameter group."""
    torch.manual_seed(config.seed)
    student = SSSNet(config.model, config.sam2_checkpoint, "cpu").to(config.device)
    if student.pretrained_encoder:
        logger.info("SAM-2 %s encoder loaded from %s (%s)", config.plan.sam2_variant, config.sam2_checkpoint,
                    "fine-tuned at a lower learning rate" if config.finetune_encoder else "frozen")
    else:
        logger.warning("SAM-2 encoder is RANDOMLY INITIALISED (no --sam2-checkpoint / SSS_SAM2_CHECKPOINT): it is not "
                       "pretrained and is trained from scratch")
    teacher = None if config.ablation.supervised_only else make_teacher(student)
    return SSSModules(student, teacher, _optimizer(student, config))


def _optimizer(student: SSSNet, config: TrainConfig) -> torch.optim.Optimizer:
    t = config.training
    encoder = list(student.encoder.parameters())
    encoder_ids = {id(p) for p in encoder}
    others = [p for p in student.parameters() if id(p) not in encoder_ids]
    groups = [{"params": others, "lr": t.learning_rate, "base_lr": t.learning_rate}]
    if not student.pretrained_encoder:
        groups.append({"params": encoder, "lr": t.learning_rate, "base_lr": t.learning_rate})
    elif config.finetune_encoder:
        lr = t.learning_rate * t.encoder_lr_factor
        groups.append({"params": encoder, "lr": lr, "base_lr": lr})
    else:
        _freeze(student.encoder)
    return torch.optim.AdamW(groups, lr=t.learning_rate, weight_decay=t.weight_decay)


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def poly_lr(optimizer: torch.optim.Optimizer, iteration: int, total_iterations: int, exponent: float) -> float:
    """Set every group's lr to base_lr · (1 − t/T)^exponent; returns the first group's lr."""
    factor = (1 - min(iteration, total_iterations - 1) / total_iterations) ** exponent
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return optimizer.param_groups[0]["lr"]
