"""Pass 2 of the volumetric configuration `2d_memory`: propagate through the slice memory from prompt slices.

For each start slice (each class's prompt slice from PCSW: the slice where its kept object is
largest), the volume is segmented up to its last slice and down to its first (networks/clip.py
`propagation_passes`), every in-plane tile position as one clip of the whole slice range: the start
slice is prompted with PCSW's objects on it, every later slice reads the memories of the slices
already segmented. Tiles are Gaussian-weighted as in the 2d sliding window, mirror TTA flips every
slice of a clip alike, and the start slice (segmented by both passes) is averaged. The probabilities
of several start slices and several models are averaged.
"""

from __future__ import annotations

import numpy as np
import torch

from sss_auto.inference.settings import InferenceSettings
from sss_auto.inference.sliding_window import gaussian_weights, mirrored_probabilities, tile_starts
from sss_auto.networks.clip import propagation_passes, segment_clip
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.pcsw import PCSWResult


def start_slices(results: list[PCSWResult], coarse: np.ndarray) -> list[int]:
    """The slices propagation starts from: per class PCSW kept an object for, the slice where it is largest;
    without any, the slice with the most coarse foreground (none when the coarse pass found no foreground)."""
    starts = sorted({int(r.mask.sum((1, 2)).argmax()) for r in results if r.mask is not None and r.mask.any()})
    if starts:
        return starts
    foreground = (coarse.argmax(0) > 0).sum((1, 2))
    return [int(foreground.argmax())] if foreground.any() else []


@torch.no_grad()
def propagate(model: SSSNet, data: np.ndarray, settings: InferenceSettings, start: int,
              prompt_map: np.ndarray | None = None) -> np.ndarray:
    """float32 (K+1, S, H, W) probabilities of a volume (C, S, H, W) propagated from slice `start` both ways.

    Args:
        prompt_map: uint8 (S, H, W) objects; the start slice's are its prompts (None: no prompts).
    """
    channels, slices, height, width = data.shape
    patch, num_classes, device = settings.patch, model.config.num_classes, settings.device
    pad_h, pad_w = max(0, patch - height), max(0, patch - width)
    volume = torch.from_numpy(np.pad(data, ((0, 0), (0, 0), (0, pad_h), (0, pad_w))))
    start_map = np.pad(prompt_map[start], ((0, pad_h), (0, pad_w))) if prompt_map is not None else None
    shape = volume.shape[1:]
    weights = gaussian_weights(patch).to(device)
    probs = torch.zeros(num_classes, *shape, dtype=torch.float32, device=device)
    total = torch.zeros(shape, dtype=torch.float32, device=device)
    positions = [(y, x) for y in tile_starts(shape[1], patch) for x in tile_starts(shape[2], patch)]
    for order in propagation_passes(slices, start):
        for first in range(0, len(positions), settings.batch_size):
            chunk = positions[first:first + settings.batch_size]
            clip = torch.stack([volume[:, order, y:y + patch, x:x + patch].transpose(0, 1) for y, x in chunk]).to(device)
            index = torch.tensor(order, device=device).expand(len(chunk), -1)
            maps = np.stack([start_map[y:y + patch, x:x + patch] for y, x in chunk]) if start_map is not None else None

            def clip_logits(x, prompts, index=index):  # (B, K+1, L, P, P)
                return torch.stack([out.fused for out in segment_clip(model, x, prompts, index, encode_together=False)],
                                   dim=2)

            p = mirrored_probabilities(clip_logits, clip, maps, num_classes, settings.tta, device)
            for (y, x), tile in zip(chunk, p):
                probs[:, order, y:y + patch, x:x + patch] += tile * weights
                total[order, y:y + patch, x:x + patch] += weights
    return (probs / total)[:, :, :height, :width].cpu().numpy()


def propagated_probabilities(models: list[SSSNet], data: np.ndarray, settings: InferenceSettings, starts: list[int],
                             prompt_map: np.ndarray | None) -> np.ndarray:
    """Mean over models and start slices of `propagate`."""
    total = sum(propagate(model, data, settings, start, prompt_map) for model in models for start in starts)
    return total / (len(models) * len(starts))
