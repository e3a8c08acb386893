"""DFE — Discriminative Feature Enhancement of strong-view features using the weak view.

For weak features Fw (detached) and strong features Fs at one scale:
    Aw, As = align(Fw), align(Fs)             shared 3x3 conv
    s = cos(GAP(Aw), GAP(As)); w = sigmoid(s)  one scalar per sample
    F = w·MLP(Aw) + (1 − w)·MLP(As) + (1 − s)·(As − Aw)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sam2.modeling.sam2_utils import LayerNorm2d
from torch import nn

MLP_WIDTHS = (512, 512, 256)


class PixelMLP(nn.Sequential):
    """Per-pixel channel MLP: 1x1 convs, each but the last followed by channel LayerNorm and ReLU.

    Stored as Conv2d / LayerNorm2d / ReLU modules (the state dict of that Sequential), computed on a
    (pixels, C) matrix with linear layers and the fused layer_norm: the same function, about a
    quarter faster than the NCHW modules on the CPU (documentation/benchmarks.md).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, h, w = x.shape
        y = x.permute(0, 2, 3, 1).reshape(batch * h * w, -1)
        for module in self:
            if isinstance(module, nn.Conv2d):
                y = F.linear(y, module.weight.flatten(1), module.bias)
            elif isinstance(module, LayerNorm2d):
                y = F.layer_norm(y, (y.shape[1],), module.weight, module.bias, module.eps)
            else:
                y = module(y)
        return y.reshape(batch, h, w, -1).permute(0, 3, 1, 2)


class DFEBlock(nn.Module):
    """DFE at one scale for C-channel feature maps."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.align = nn.Conv2d(channels, channels, 3, padding=1)
        layers: list[nn.Module] = []
        cin = channels
        for width in MLP_WIDTHS:
            layers += [nn.Conv2d(cin, width, 1), LayerNorm2d(width), nn.ReLU()]
            cin = width
        layers.append(nn.Conv2d(cin, channels, 1))
        self.mlp = PixelMLP(*layers)

    def forward(self, f_w: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
        """f_w (B, C, h, w), detached here; f_s (n·B, C, h, w): n strong views of the same B weak samples,
        view-major. The weak branch runs once and is shared by the n views. Returns (n·B, C, h, w)."""
        views, rest = divmod(f_s.shape[0], f_w.shape[0])
        if rest or not views:
            raise ValueError(f"DFE: {f_s.shape[0]} strong samples are not views of {f_w.shape[0]} weak ones")
        a_w = self.align(f_w.detach())
        m_w = self.mlp(a_w).repeat(views, 1, 1, 1)
        a_w = a_w.repeat(views, 1, 1, 1)
        a_s = self.align(f_s)
        s = F.cosine_similarity(a_w.mean((2, 3)), a_s.mean((2, 3)), dim=1)[:, None, None, None]
        w = torch.sigmoid(s)
        return w * m_w + (1 - w) * self.mlp(a_s) + (1 - s) * (a_s - a_w)


class DFE(nn.Module):
    """DFE on selected levels of a feature pyramid; other levels pass through unchanged.

    Args:
        channels: channels of every level.
        levels: indices of the levels to enhance (level i has stride 4·2^i: 1 → stride 8, 2 → 16).
            An empty tuple builds a pass-through (the "no DFE" ablation).
    """

    def __init__(self, channels: int, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.blocks = nn.ModuleDict({str(level): DFEBlock(channels) for level in self.levels})

    def forward(self, f_w: list[torch.Tensor], f_s: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.blocks[str(i)](fw, fs) if str(i) in self.blocks else fs for i, (fw, fs) in enumerate(zip(f_w, f_s))]
