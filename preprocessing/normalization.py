"""Intensity normalization per channel: CT (global clip + z-score) or per-image z-score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("ct", "zscore", "none")
MIN_STD = 1e-8


@dataclass(frozen=True)
class ChannelNormalization:
    """How one channel is normalized.

    Attributes:
        scheme: "ct" (clip to [clip_low, clip_high], subtract mean, divide by std; dataset-global
            values from the labeled foreground), "zscore" (per image) or "none".
        clip_low, clip_high, mean, std: used by "ct" only (intensity units of the raw image).
    """

    scheme: str
    clip_low: float = 0.0
    clip_high: float = 0.0
    mean: float = 0.0
    std: float = 1.0


def scheme_for_channel(channel_name: str) -> str:
    """Map a dataset.json channel name to a scheme: "CT" → ct, "noNorm" → none, else zscore."""
    lowered = channel_name.lower()
    if lowered == "ct":
        return "ct"
    if lowered == "nonorm":
        return "none"
    return "zscore"


def normalize(images: np.ndarray, schemes: tuple[ChannelNormalization, ...]) -> np.ndarray:
    """Normalize every channel.

    Args:
        images: float32 (C, z, y, x) raw intensities.
        schemes: one ChannelNormalization per channel.

    Returns:
        float32 (C, z, y, x), a new array.
    """
    if len(schemes) != images.shape[0]:
        raise ValueError(f"{len(schemes)} normalization schemes for {images.shape[0]} channels")
    out = np.empty(images.shape, dtype=np.float32)
    for channel, norm in enumerate(schemes):
        data = images[channel].astype(np.float32, copy=False)
        if norm.scheme == "ct":
            out[channel] = (np.clip(data, norm.clip_low, norm.clip_high) - norm.mean) / max(norm.std, MIN_STD)
        elif norm.scheme == "zscore":
            out[channel] = (data - data.mean()) / max(float(data.std()), MIN_STD)
        elif norm.scheme == "none":
            out[channel] = data
        else:
            raise ValueError(f"unknown normalization scheme {norm.scheme!r}; expected one of {SCHEMES}")
    return out
