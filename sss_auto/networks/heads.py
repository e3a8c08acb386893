"""Decoding heads: the light FPN coarse head and SAM-2 prompt-based refinement."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sss_auto.networks.prompts import Prompts
from sss_auto.networks.sam2_parts import FEATURE_CHANNELS, Sam2Parts


class CoarseHead(nn.Module):
    """FPN decoder: three feature levels -> K+1 class logits at stride 4, upsampled to the input size.

    Predicting at stride 4 and upsampling the logits (not 64-channel features) keeps the head's
    convolutions off the full-resolution grid, where they took about 30 % of a training step.
    """

    def __init__(self, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(FEATURE_CHANNELS, width, 1) for _ in range(3))
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width), nn.GELU())
        self.out = nn.Sequential(nn.Conv2d(width, width // 2, 3, padding=1), nn.GELU(), nn.Conv2d(width // 2, num_classes, 1))

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """features: strides 4/8/16, (B, 256, ·, ·) each -> logits (B, K+1, H, W)."""
        x = self.lateral[2](features[2])
        for level in (1, 0):
            lateral = self.lateral[level](features[level])
            x = lateral + F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.out(self.fuse(x))  # at stride 4, like SAM-2's mask decoder output
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class SamRefiner(nn.Module):
    """SAM-2's prompt encoder + mask decoder: one refined mask logit per prompted (sample, class)."""

    def __init__(self, parts: Sam2Parts) -> None:
        super().__init__()
        self.prompt_encoder = parts.prompt_encoder
        self.mask_decoder = parts.mask_decoder
        self.no_mem_embed = parts.no_mem_embed

    def forward(self, features: list[torch.Tensor], prompts: Prompts, size: tuple[int, int]) -> torch.Tensor:
        """Refine every valid prompt.

        Args:
            features: strides 4/8/16, (B, 256, ·, ·) each.
            prompts: (B, K) boxes/points in input pixels.
            size: (H, W) of the input.

        Returns:
            Refined mask logits (B, K, H, W); zero where a prompt is not valid.
        """
        batch, num_fg = prompts.valid.shape
        out = features[0].new_zeros(batch, num_fg, *size)
        index = prompts.valid.nonzero(as_tuple=False)
        if index.numel() == 0:
            return out
        sample = index[:, 0]
        image_embedding = features[2] + self.no_mem_embed.view(1, -1, 1, 1)
        high_res = [self.mask_decoder.conv_s0(features[0]), self.mask_decoder.conv_s1(features[1])]
        points = prompts.points[index[:, 0], index[:, 1]][:, None, :]
        labels = torch.ones(points.shape[:2], dtype=torch.int32, device=points.device)
        sparse, dense = self.prompt_encoder(points=(points, labels), boxes=prompts.boxes[index[:, 0], index[:, 1]], masks=None)
        low_res, _, _, _ = self.mask_decoder(
            image_embeddings=image_embedding[sample], image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
            repeat_image=False, high_res_features=[h[sample] for h in high_res])
        refined = F.interpolate(low_res, size=size, mode="bilinear", align_corners=False)[:, 0]
        return out.index_put((index[:, 0], index[:, 1]), refined.to(out.dtype))
