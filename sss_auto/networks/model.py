"""The SSS network: input adapter → encoder → coarse head (+ SAM-2 refinement, fused)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sss_auto.errors import CheckpointError
from sss_auto.networks.dfe import DFE
from sss_auto.networks.encoders import ConvEncoder, HieraEncoder, InputAdapter
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.heads import CoarseHead, SamRefiner
from sss_auto.networks.memory import MemoryConditioner
from sss_auto.networks.prompts import Prompts
from sss_auto.networks.sam2_parts import FEATURE_CHANNELS, build_sam2_parts

logger = logging.getLogger(__name__)
ENCODERS = ("hiera", "conv")


@dataclass
class SegOutput:
    """Logits (B, K+1, H, W): `coarse` from the FPN head, `fused` with SAM-2 refinement added."""

    coarse: torch.Tensor
    fused: torch.Tensor


class SSSNet(nn.Module):
    """Encoder + coarse head + SAM-2 refinement + fusion, with a DFE module for the strong branch."""

    def __init__(self, config: ModelConfig, checkpoint: Path | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        if config.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {config.encoder!r}; expected one of {ENCODERS}")
        self.config = config
        parts = build_sam2_parts(config.sam2_variant, config.image_size, checkpoint, device, bool(config.memory_frames))
        self.pretrained_encoder = parts.pretrained and config.encoder == "hiera"
        with torch.device(device if str(device) == "meta" else "cpu"):
            self.adapter = InputAdapter(config.in_channels)
            self.encoder = HieraEncoder(parts.image_encoder) if config.encoder == "hiera" else ConvEncoder()
            self.coarse_head = CoarseHead(config.num_classes)
            self.refiner = SamRefiner(parts) if config.refine else None
            self.fusion_weight = nn.Parameter(torch.ones(config.num_classes - 1))
            self.dfe = DFE(FEATURE_CHANNELS, config.dfe_levels)
            self.memory = (MemoryConditioner(parts, (1.0 if parts.pretrained else 0.0) if config.memory_gate else None)
                           if config.memory_frames else None)  # SAM-2's own modules, already built
        self.to(device)

    def load_trained_state(self, state: dict[str, torch.Tensor], resuming: bool = False) -> None:
        """load_state_dict; a checkpoint from before DFE had gates loads for prediction (DFE runs in training only).

        Raises:
            CheckpointError: such a checkpoint when training is to be continued (its DFE replaced the
                strong features instead of adding to them, so the run cannot go on unchanged).
        """
        missing = [f"dfe.gates.{level}" for level in self.dfe.levels if f"dfe.gates.{level}" not in state]
        if missing:
            if resuming:
                raise CheckpointError("the checkpoint was written before DFE became a gated residual (no "
                                      f"{', '.join(missing)}): it cannot be continued with --c; predict with it, or "
                                      "train a new run")
            logger.info("checkpoint from before DFE had gates: loaded for prediction (DFE is not used at inference)")
            state = {**state, **{key: torch.zeros(()) for key in missing}}
        self.load_state_dict(state)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, C, H, W) normalized images -> features at strides 4, 8, 16 (B, 256, ·, ·)."""
        return self.encoder(self.adapter(x))

    def decode(self, features: list[torch.Tensor], prompts: Prompts | None, size: tuple[int, int]) -> SegOutput:
        """Coarse logits, and fused logits = coarse + w_k · refined_k where class k has a prompt."""
        coarse = self.coarse_head(features, size)
        if self.refiner is None or prompts is None or not bool(prompts.valid.any()):
            return SegOutput(coarse, coarse)
        refined = self.refiner(features, prompts, size)
        foreground = coarse[:, 1:] + self.fusion_weight.view(1, -1, 1, 1) * refined
        return SegOutput(coarse, torch.cat([coarse[:, :1], foreground], dim=1))

    def forward(self, x: torch.Tensor, prompts: Prompts | None = None) -> SegOutput:
        return self.decode(self.encode(x), prompts, tuple(x.shape[-2:]))
