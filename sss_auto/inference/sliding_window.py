"""Sliding-window prediction of 2D slices with Gaussian weighting and mirror test-time augmentation."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from sss_auto.networks.prompts import Prompts
from sss_auto.prompting.from_masks import prompts_from_label_maps

TILE_STEP = 0.5  # tiles overlap by half a patch
GAUSSIAN_SIGMA_SCALE = 1 / 8
MIRROR_AXES = ((), (-1,), (-2,), (-2, -1))

# (tiles (B, C, P, P), prompts or None) -> logits (B, K+1, P, P)
TileFunction = Callable[[torch.Tensor, Prompts | None], torch.Tensor]


def gaussian_weights(patch: int) -> torch.Tensor:
    """(P, P) importance map: a Gaussian (σ = P/8) peaking at the tile centre, never zero."""
    t = torch.arange(patch, dtype=torch.float32) - (patch - 1) / 2
    g = torch.exp(-0.5 * (t / (patch * GAUSSIAN_SIGMA_SCALE)) ** 2)
    weights = g[:, None] * g[None, :]
    weights = weights / weights.max()
    return weights.clamp_min(weights[weights > 0].min())


def tile_starts(extent: int, patch: int, step: float = TILE_STEP) -> list[int]:
    """Start positions covering [0, extent) with tiles of `patch` and the given overlap (extent ≥ patch)."""
    if extent <= patch:
        return [0]
    count = int(np.ceil((extent - patch) / (patch * step))) + 1
    return sorted({int(round(v)) for v in np.linspace(0, extent - patch, count)})


def _tiles(shape: tuple[int, int, int], patch: int) -> Iterator[tuple[int, int, int]]:
    slices, height, width = shape
    for z in range(slices):
        for y in tile_starts(height, patch):
            for x in tile_starts(width, patch):
                yield z, y, x


def predict_slices(predict_tiles: TileFunction, images: np.ndarray, patch: int, num_classes: int,
                   prompt_maps: np.ndarray | None = None, tta: bool = True, batch_size: int = 8,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Class probabilities of every slice of a volume.

    Args:
        predict_tiles: the network, on tiles (see TileFunction).
        images: float32 (C, S, H, W) normalized volume.
        patch: tile side (the plan's patch size).
        num_classes: K+1.
        prompt_maps: uint8 (S, H, W) objects to prompt with (from PCSW), or None for no prompts.
            Each tile's prompts are derived from the map cut to the tile (and mirrored with it).
        tta: average over the 4 mirrorings of the (y, x) plane.

    Returns:
        float32 (K+1, S, H, W) softmax probabilities, Gaussian-weighted over overlapping tiles.
    """
    channels, slices, height, width = images.shape
    pad_h, pad_w = max(0, patch - height), max(0, patch - width)
    padded = np.pad(images, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
    maps = np.pad(prompt_maps, ((0, 0), (0, pad_h), (0, pad_w))) if prompt_maps is not None else None
    shape = padded.shape[1:]
    volume = torch.from_numpy(padded)
    weights = gaussian_weights(patch).to(device)
    probs = torch.zeros(num_classes, *shape, dtype=torch.float32, device=device)
    total = torch.zeros(shape, dtype=torch.float32, device=device)
    positions = list(_tiles(shape, patch))
    for first in range(0, len(positions), batch_size):
        chunk = positions[first:first + batch_size]
        x = torch.stack([volume[:, z, y:y + patch, x0:x0 + patch] for z, y, x0 in chunk]).to(device)
        tile_maps = np.stack([maps[z, y:y + patch, x0:x0 + patch] for z, y, x0 in chunk]) if maps is not None else None
        p = mirrored_probabilities(predict_tiles, x, tile_maps, num_classes, tta, device)
        for (z, y, x0), tile in zip(chunk, p):
            probs[:, z, y:y + patch, x0:x0 + patch] += tile * weights
            total[z, y:y + patch, x0:x0 + patch] += weights
    probs = probs / total
    return probs[:, :, :height, :width].cpu().numpy()


@torch.no_grad()
def mirrored_probabilities(predict_tiles: TileFunction, x: torch.Tensor, tile_maps: np.ndarray | None,
                           num_classes: int, tta: bool, device) -> torch.Tensor:
    """Softmax over dim 1 of `predict_tiles`, averaged over the (y, x) mirrorings with `tta`.

    x: tiles (B, C, P, P), or clips of tiles (B, L, C, P, P) whose function returns (B, K+1, L, P, P);
    tile_maps: uint8 (B, P, P) objects to prompt each tile (a clip's first slice) with, mirrored alike.
    """
    out = 0
    axes_list = MIRROR_AXES if tta else ((),)
    for axes in axes_list:
        xm = x.flip(axes) if axes else x
        prompts = None
        if tile_maps is not None:
            maps = np.flip(tile_maps, axes).copy() if axes else tile_maps
            prompts = prompts_from_label_maps(maps, num_classes - 1).to(device)
        logits = predict_tiles(xm, prompts).float()
        p = logits.softmax(1)
        out = out + (p.flip(axes) if axes else p)
    return out / len(axes_list)
