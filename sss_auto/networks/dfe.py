"""DFE — Discriminative Feature Enhancement, as a gated residual on the student's strong-view features.

For two feature maps Fa, Fb of C channels at one scale (SSS_METHOD.md):
    Aa, Ab = align(Fa), align(Fb)             shared 3x3 conv
    s = cos(GAP(Aa), GAP(Ab)); w = sigmoid(s)  one scalar per sample
    DFE(Fa, Fb) = w·MLP(Aa) + (1 − w)·MLP(Ab) + (1 − s)·(Ab − Aa)
and the enhanced features are F' = Fa + γ·DFE(Fa, Fb), with one learnable gate γ per level
initialised to 0: training starts as plain weak-to-strong and DFE has to earn a non-zero gate.

Which features are paired (`DFE_INPUTS`):
- "strong_pair": the two strong views of the same image enhance each other, from the student's own
  features (Fs1' = Fs1 + γ·DFE(Fs1, Fs2), Fs2' likewise). No feature of the weak view, which the
  pseudo label is decoded from, reaches the student's strong-view prediction. One strong view is
  paired with a channel-dropout copy of its own features (UniMatch's feature perturbation).
- "weak_strong": the teacher's weak features (detached) with each strong view, Fs' = Fs + γ·DFE(Fw, Fs):
  the first SSS_METHOD reading, kept as an ablation; it gives the student a path to the pseudo label's
  own features (see the swap diagnostic in sss_auto/method/steps.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sam2.modeling.sam2_utils import LayerNorm2d
from torch import nn

from sss_auto.networks.dfe_modes import DFE_INPUTS

MLP_WIDTHS = (512, 512, 256)
SELF_PAIR_DROPOUT = 0.5  # channel dropout of the partner copy when there is one strong view


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
    """DFE(Fa, Fb) at one scale for C-channel feature maps (the un-gated enhancement)."""

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

    def branch(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(align(f), MLP(align(f))) of one input, (B, C, h, w) each."""
        a = self.align(f)
        return a, self.mlp(a)

    @staticmethod
    def combine(a_a: torch.Tensor, m_a: torch.Tensor, a_b: torch.Tensor, m_b: torch.Tensor) -> torch.Tensor:
        """w·MLP(Aa) + (1 − w)·MLP(Ab) + (1 − s)·(Ab − Aa) from the two branches."""
        s = F.cosine_similarity(a_a.mean((2, 3)), a_b.mean((2, 3)), dim=1)[:, None, None, None]
        w = torch.sigmoid(s)
        return w * m_a + (1 - w) * m_b + (1 - s) * (a_b - a_a)

    def forward(self, f_a: torch.Tensor, f_b: torch.Tensor) -> torch.Tensor:
        """DFE(Fa, Fb) for (B, C, h, w) inputs."""
        return self.combine(*self.branch(f_a), *self.branch(f_b))

    def pair(self, f_1: torch.Tensor, f_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(DFE(F1, F2), DFE(F2, F1)) with each branch computed once (s and w are symmetric)."""
        a_1, m_1 = self.branch(f_1)
        a_2, m_2 = self.branch(f_2)
        return self.combine(a_1, m_1, a_2, m_2), self.combine(a_2, m_2, a_1, m_1)

    def from_weak(self, f_w: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
        """DFE(Fw, Fs) for n strong views (n·B, view-major) of B weak samples; Fw is detached and its
        branch runs once for all views."""
        views, rest = divmod(f_s.shape[0], f_w.shape[0])
        if rest or not views:
            raise ValueError(f"DFE: {f_s.shape[0]} strong samples are not views of {f_w.shape[0]} weak ones")
        a_w, m_w = self.branch(f_w.detach())
        a_s, m_s = self.branch(f_s)
        return self.combine(a_w.repeat(views, 1, 1, 1), m_w.repeat(views, 1, 1, 1), a_s, m_s)


class DFE(nn.Module):
    """DFE on selected levels of a feature pyramid, added through a per-level gate γ (init 0).

    Args:
        channels: channels of every level.
        levels: indices of the levels to enhance (level i has stride 4·2^i: 1 → stride 8, 2 → 16).
            An empty tuple builds a pass-through (the "no DFE" ablation).
    """

    def __init__(self, channels: int, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.blocks = nn.ModuleDict({str(level): DFEBlock(channels) for level in self.levels})
        self.gates = nn.ParameterDict({str(level): nn.Parameter(torch.zeros(())) for level in self.levels})

    def enhance(self, f_strong: list[list[torch.Tensor]], f_w: list[torch.Tensor] | None, mode: str,
                generator: torch.Generator | None = None) -> list[list[torch.Tensor]]:
        """Enhance the strong views' pyramids.

        Args:
            f_strong: per strong view, its pyramid [(B, C, ·, ·) per level] (one or two views).
            f_w: the teacher's weak pyramid (used by "weak_strong" only).
            mode: one of DFE_INPUTS.
            generator: draws the channel-dropout copy of a single strong view ("strong_pair").

        Returns:
            The views' pyramids with F' = F + γ·DFE(...) on the enhanced levels (others unchanged).
        """
        if mode not in DFE_INPUTS:
            raise ValueError(f"unknown DFE input mode {mode!r}; expected one of {', '.join(DFE_INPUTS)}")
        out = [list(view) for view in f_strong]
        for level in self.levels:
            block, gate, i = self.blocks[str(level)], self.gates[str(level)], int(level)
            if mode == "weak_strong":
                if f_w is None:
                    raise ValueError("DFE weak_strong needs the weak features")
                stacked = torch.cat([view[i] for view in f_strong])
                enhanced = (stacked + gate * block.from_weak(f_w[i], stacked)).split(len(f_strong[0][i]))
            elif len(f_strong) == 2:
                d_1, d_2 = block.pair(f_strong[0][i], f_strong[1][i])
                enhanced = (f_strong[0][i] + gate * d_1, f_strong[1][i] + gate * d_2)
            else:
                enhanced = [view[i] + gate * block(view[i], _channel_dropout(view[i], generator)) for view in f_strong]
            for view, e in zip(out, enhanced):
                view[i] = e
        return out

    def gate_values(self) -> dict[str, float]:
        """{"dfe_gate_<level>": γ} for the log."""
        return {f"dfe_gate_{level}": float(gate.detach()) for level, gate in self.gates.items()}


def _channel_dropout(f: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Zero whole channels with probability SELF_PAIR_DROPOUT (per sample) and rescale, as Dropout2d does."""
    keep = torch.rand(f.shape[:2], generator=generator) >= SELF_PAIR_DROPOUT
    return f * keep.to(f.device, f.dtype)[:, :, None, None] / (1 - SELF_PAIR_DROPOUT)
