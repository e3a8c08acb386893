"""Image encoders behind one interface: (B, 3, H, W) -> three 256-channel maps at strides 4, 8, 16."""

from __future__ import annotations

import torch
from torch import nn

from sss_auto.networks.sam2_parts import FEATURE_CHANNELS


class HieraEncoder(nn.Module):
    """SAM-2's Hiera trunk + FPN neck (the `sam2` package's ImageEncoder)."""

    def __init__(self, image_encoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, 3, H, W) float -> [(B, 256, H/4, W/4), (B, 256, H/8, W/8), (B, 256, H/16, W/16)]."""
        return list(self.image_encoder(x)["backbone_fpn"])


class ConvEncoder(nn.Module):
    """A plain convolutional encoder with the same outputs (ablations, fast CPU runs)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.GELU(),
                                 nn.Conv2d(cout, cout, 3, 1, 1), nn.GroupNorm(8, cout), nn.GELU())

        self.stages = nn.ModuleList([
            nn.Sequential(block(3, width, 2), block(width, width * 2, 2)),
            block(width * 2, width * 4, 2),
            block(width * 4, width * 8, 2),
        ])
        self.lateral = nn.ModuleList(nn.Conv2d(c, FEATURE_CHANNELS, 1) for c in (width * 2, width * 4, width * 8))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage, lateral in zip(self.stages, self.lateral):
            x = stage(x)
            features.append(lateral(x))
        return features


class InputAdapter(nn.Module):
    """Map C input channels to the 3 the encoder expects; initialised to replicate the mean channel."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 3, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / in_channels)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
