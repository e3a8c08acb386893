"""The fully automatic SSS prediction of one preprocessed volume.

Pass 1: coarse probabilities of every slice → PCSW per class on the whole volume → pass 2: fused
probabilities with those prompts (`2d_memory`: propagated through the slice memory from PCSW's
prompt slices, inference/propagation.py). Several models (folds) are averaged in both passes. Training
validation, the PCSW bank refresh and `sss_predict` all use these functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from sss_auto.inference.propagation import propagated_probabilities, start_slices
from sss_auto.inference.settings import InferenceSettings
from sss_auto.inference.sliding_window import predict_slices
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.pcsw import ClassConstraint, PCSWResult, pcsw_label_volume

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VolumePrediction:
    """probabilities: float32 (K+1, S, H, W), fused (pass 2) or coarse when pass 2 did not run;
    coarse: the pass-1 probabilities; prompt_map: uint8 (S, H, W) objects PCSW kept."""

    probabilities: np.ndarray
    prompt_map: np.ndarray | None
    pcsw: list[PCSWResult]
    coarse: np.ndarray


def mean_probabilities(models: list[SSSNet], data: np.ndarray, settings: InferenceSettings,
                       prompt_map: np.ndarray | None = None, tta: bool | None = None) -> np.ndarray:
    """Mean over models of the probabilities, float32 (K+1, S, H, W): coarse without a prompt map, else fused."""
    tta = settings.tta if tta is None else tta
    total = None
    for model in models:
        if prompt_map is None:
            def tiles(x, _prompts, model=model):
                return model(x, None).coarse
        else:
            def tiles(x, prompts, model=model):
                return model(x, prompts).fused
        p = predict_slices(tiles, data, settings.patch, model.config.num_classes, prompt_map, tta,
                           settings.batch_size, settings.device)
        total = p if total is None else total + p
    return total / len(models)


@torch.no_grad()
def predict_volume(models: list[SSSNet], data: np.ndarray, spacing_mm: tuple[float, float, float],
                   settings: InferenceSettings, constraints: dict[int, ClassConstraint] | None = None) -> VolumePrediction:
    """Two-pass prediction of a volume on the cached grid.

    Args:
        models: trained networks in eval mode (same classes and patch).
        data: float32 (C, S, H, W) preprocessed image.
        spacing_mm: (z, y, x) spacing of `data` (PCSW's physical constraints are in mm³).
        constraints: per class value, from the fingerprint.
    """
    coarse = mean_probabilities(models, data, settings)
    if any(m.memory is not None for m in models):
        return _propagated(models, data, spacing_mm, settings, constraints, coarse)
    refine = settings.use_prompts and all(m.refiner is not None for m in models)
    if not refine:
        return VolumePrediction(coarse, None, [], coarse)
    prompt_map, results = pcsw_label_volume(coarse, spacing_mm, settings.pcsw_tau, constraints)
    statuses = ", ".join(f"class {k}: {r.status}" for k, r in enumerate(results, start=1))
    if not prompt_map.any():
        logger.debug("pass 2 skipped, no class got a prompt (PCSW %s)", statuses)
        return VolumePrediction(coarse, prompt_map, results, coarse)
    logger.debug("pass 2 runs (PCSW %s)", statuses)
    return VolumePrediction(mean_probabilities(models, data, settings, prompt_map), prompt_map, results, coarse)


def _propagated(models: list[SSSNet], data: np.ndarray, spacing_mm: tuple[float, float, float],
                settings: InferenceSettings, constraints: dict[int, ClassConstraint] | None,
                coarse: np.ndarray) -> VolumePrediction:
    """Pass 2 of `2d_memory` (inference/propagation.py): from PCSW's prompt slices through the slice memory.

    PCSW runs with or without a refiner: it chooses where propagation starts; its objects on the start
    slice are the prompts (none when prompts are off). No start slice (no coarse foreground): pass 1.
    """
    if not all(m.memory is not None for m in models):
        raise ValueError("a 2d_memory model cannot be ensembled with 2d models")
    prompt_map, results = pcsw_label_volume(coarse, spacing_mm, settings.pcsw_tau, constraints)
    starts = start_slices(results, coarse)
    if not starts:
        logger.debug("no foreground in pass 1: nothing to propagate")
        return VolumePrediction(coarse, prompt_map, results, coarse)
    logger.debug("propagation through the slice memory from slice(s) %s", starts)
    fused = propagated_probabilities(models, data, settings, starts, prompt_map if settings.use_prompts else None)
    return VolumePrediction(fused.astype(np.float32), prompt_map, results, coarse)
