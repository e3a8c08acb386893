"""Experiment planning: spacing, transposition, patch, batch and SAM-2 variant for a memory budget."""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from planners.fingerprint import Fingerprint
from planners.batch_fit import GIB, fit_batch
from planners.target import PlanTarget
from planners.plans import FORMAT_VERSION, MAX_MEMORY_FRAMES, MAX_PATCH, PATCH_MULTIPLE, ConfigurationPlan, Plans, ResamplingPlan, TrainingPlan
from preprocessing.normalization import ChannelNormalization, scheme_for_channel
from sss_auto.errors import PlansError
from sss_auto.networks.config import ModelConfig

logger = logging.getLogger(__name__)

DEFAULT_GPU_MEMORY_GIB = 8.0  # used when no GPU is found and none is given (nnU-Net's default target)
GPU_MEMORY_USABLE_FRACTION = 0.9  # leave room for the CUDA context and fragmentation
ANISOTROPY_RATIO = 3.0
MIN_BATCH = 2
MAX_BATCH = 12
MIN_PATCH = 64
AUTO_VARIANTS = ("large", "base_plus", "small", "tiny")  # tried in this order; the first that fits wins
DEFAULT_DFE_LEVELS = (1, 2)
# Without weights: the reduced Hiera at lr 1e-3 is what learned from random initialisation in the semi-supervised
# benchmark (documentation/benchmarks.md); a randomly initialised `large` stayed at Dice 0 for 9 epochs on an H200.
FROM_SCRATCH_VARIANT = "test"
FROM_SCRATCH_LEARNING_RATE = 1e-3
# Without CUDA: what a CPU trains in a stated time (the benchmark's CPU recipe: batch 4 + 4, 50 iterations per epoch).
CPU_MAX_PATCH = 256
CPU_MAX_BATCH = 4
CPU_ITERATIONS_PER_EPOCH = 50
CPU_TIME_BUDGET_MIN = 60.0
# any of these exists where a CUDA (or ROCm) device can: NVIDIA driver, ROCm kernel driver, WSL2's GPU
GPU_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
METHODS = ("auto", "full", "weak_to_strong")  # which SSS parts a plan switches on (see method_parts)
# 2d_memory's clip lengths, longest first: SAM-2 trains on 8-frame clips; a CPU step costs about its slices
CLIP_LENGTHS = {"cuda": (8, 4, 2), "cpu": (4, 2)}


def detect_gpu_memory_gib() -> float | None:
    """Usable memory of GPU 0 in GiB (90% of its total), or None without CUDA.

    A machine without a GPU driver (no NVIDIA, ROCm or WSL GPU device) has no CUDA device, and is
    told without importing torch; otherwise torch decides.
    """
    if not any(Path(p).exists() for p in GPU_DRIVER_PATHS) and not shutil.which("nvidia-smi"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory * GPU_MEMORY_USABLE_FRACTION / GIB


def target_spacing(spacings: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """nnU-Net's rule: the per-axis median; a thick, short axis gets its 10th percentile instead.

    Args:
        spacings: (N, 3) case spacings (z, y, x) in mm.
        shapes: (N, 3) case shapes in voxels.

    Returns:
        (3,) target spacing in mm.
    """
    target = np.median(spacings, axis=0)
    thick = int(np.argmax(target))
    others = [a for a in range(3) if a != thick]
    median_shape = np.median(shapes, axis=0)
    if target[thick] > ANISOTROPY_RATIO * max(target[others]) and median_shape[thick] * ANISOTROPY_RATIO < min(median_shape[others]):
        target[thick] = max(np.percentile(spacings[:, thick], 10), max(target[others]) + 1e-5)
    return target


def plan(fingerprint: Fingerprint, target: PlanTarget, sam2_variant: str | None = None, *, encoder: str = "hiera",
         training: TrainingPlan | None = None, method: str = "auto") -> Plans:
    """Plan the 2d configuration (and `2d_memory` beside it, `plan_memory`) for a device, a memory budget and
    the SAM-2 weights that exist (no I/O).

    Args:
        fingerprint: the dataset fingerprint.
        target: the device, the memory budget of one training step and the SAM-2 weights found.
        sam2_variant: force a variant (e.g. "test"); None: the largest with weights that fits, or
            FROM_SCRATCH_VARIANT without weights.
        encoder: "hiera" or "conv".
        training: training settings to record; None: the regime's (see training_plan).
        method: "full" (DFE, PCSW, SAM-2 refinement), "weak_to_strong" (coarse head only), or "auto"
            (full with weights; weak-to-strong from scratch, where the benchmark measured it ahead).

    Raises:
        PlansError: nothing fits the budget, even the smallest candidate with a 64-pixel patch.
    """
    spacings, shapes = fingerprint.spacings(), fingerprint.shapes_after_crop()
    spacing = target_spacing(spacings, shapes)
    transpose = tuple(int(a) for a in [int(np.argmax(spacing))] + [a for a in range(3) if a != int(np.argmax(spacing))])
    spacing_t = spacing[list(transpose)]
    resampled = np.array([np.asarray(sh)[list(transpose)] * np.asarray(sp)[list(transpose)] / spacing_t
                          for sp, sh in zip(spacings, shapes)])
    median_shape = tuple(int(round(v)) for v in np.median(resampled, axis=0))
    patch_side = min(MAX_PATCH, max(MIN_PATCH, PATCH_MULTIPLE * math.ceil(max(median_shape[1:]) / PATCH_MULTIPLE)))
    if target.device == "cpu" and patch_side > CPU_MAX_PATCH:
        logger.info("CPU plan: patch %d capped at %d (a step costs about the square of the side); slices are still "
                    "predicted whole, by sliding window", patch_side, CPU_MAX_PATCH)
        patch_side = CPU_MAX_PATCH
    num_classes = max(fingerprint.labels.values()) + 1
    if sam2_variant:
        candidates = (sam2_variant,)
    else:
        # a GPU takes the largest variant with weights that fits; a CPU the smallest (its step time decides)
        order = AUTO_VARIANTS if target.device == "cuda" else AUTO_VARIANTS[::-1]
        candidates = tuple(v for v in order if v in target.weights) or (FROM_SCRATCH_VARIANT,)
    if method not in METHODS:
        raise PlansError(f"method {method!r} is not one of {', '.join(METHODS)}")
    pretrained_possible = any(v in target.weights for v in candidates)
    refine, dfe_levels = method_parts(method, pretrained_possible)
    variant, patch_side, batch, estimate = choose_model(
        len(fingerprint.channel_names), num_classes, patch_side, target.memory_gib, encoder=encoder,
        candidates=candidates, max_batch=CPU_MAX_BATCH if target.device == "cpu" else MAX_BATCH,
        mixed_precision=target.device == "cuda", refine=refine, dfe_levels=dfe_levels)
    checkpoint = target.weights.get(variant)
    config = ConfigurationPlan(
        spacing_mm=tuple(float(v) for v in spacing_t), resample_z=False, median_shape=median_shape,
        patch_size=(patch_side, patch_side), batch_size_labeled=batch, batch_size_unlabeled=batch,
        sam2_variant=variant, encoder=encoder, dfe_levels=dfe_levels, refine=refine,
        gpu_memory_target_gib=round(target.memory_gib, 2), estimated_step_memory_gib=round(estimate, 3),
        training=training or training_plan(target.device, checkpoint is not None), device=target.device,
        pretrained=checkpoint is not None, sam2_checkpoint=None if checkpoint is None else str(checkpoint),
        weights_note=weights_note(variant, checkpoint, bool(sam2_variant)) + parts_note(method, refine))
    configurations = {"2d": config}
    memory = plan_memory(config, len(fingerprint.channel_names), num_classes, target)
    if memory is not None:
        configurations["2d_memory"] = memory
    normalization = tuple(_normalization(name, stats) for name, stats in zip(fingerprint.channel_names, fingerprint.intensity_per_channel))
    return Plans(FORMAT_VERSION, fingerprint.dataset_name, fingerprint.channel_names, dict(fingerprint.labels), transpose,
                 tuple(transpose.index(i) for i in range(3)), normalization, ResamplingPlan(), configurations)


def plan_memory(base: ConfigurationPlan, in_channels: int, num_classes: int, target: PlanTarget) -> ConfigurationPlan | None:
    """The volumetric configuration `2d_memory` beside a 2d plan: the same spacing, patch, variant and SSS parts
    (DFE too, as strong_pair on the strong clip), SAM-2's memory modules, and the longest clip (of CLIP_LENGTHS) of which a batch of at
    least one clip fits the budget, with as many clips as fit (a CPU: as many slices per step as its 2d batch).
    None, with a warning, when not even a clip of the shortest length fits.
    """
    budget = int(target.memory_gib * GIB)
    for length in CLIP_LENGTHS[target.device]:
        frames = min(MAX_MEMORY_FRAMES, length - 1)
        model = ModelConfig(in_channels, num_classes, base.patch_size[0], base.sam2_variant, base.encoder, base.refine,
                            base.dfe_levels, memory_frames=frames)
        max_clips = max(1, base.batch_size_labeled // length) if target.device == "cpu" else MAX_BATCH
        batch, estimate = fit_batch(model, budget, max_clips, mixed_precision=target.device == "cuda", clip_length=length)
        if batch >= 1:
            return replace(base, batch_size_labeled=batch, batch_size_unlabeled=batch,
                           estimated_step_memory_gib=round(estimate.total_gib, 3), clip_length=length,
                           memory_frames=frames, data_identifier="2d")
    logger.warning("2d_memory not planned: not even one clip of %d slices fits %.1f GiB", CLIP_LENGTHS[target.device][-1],
                   target.memory_gib)
    return None


def method_parts(method: str, pretrained: bool) -> tuple[bool, tuple[int, ...]]:
    """(refine, dfe_levels) of a method; "auto": the full method with weights, weak-to-strong from scratch.

    From scratch, the semi-supervised benchmark (3 seeds, equal CPU time) put weak-to-strong with the
    coarse head 0.040 +- 0.009 mean Dice ahead of full SSS; DFE and PCSW + refinement each lost to their
    ablation. The pretrained regime keeps SSS_METHOD's full method (not measured here: no weights).
    """
    full = method == "full" or (method == "auto" and pretrained)
    return (True, DEFAULT_DFE_LEVELS) if full else (False, ())


def parts_note(method: str, refine: bool) -> str:
    """The plan's SSS parts and why, appended to weights_note."""
    if refine:
        return "; full SSS (DFE, PCSW, SAM-2 refinement)" + (" as planned for weights" if method == "auto" else ", forced")
    return ("; weak-to-strong with the coarse head (no DFE, PCSW or refinement)" +
            (": the best semi-supervised variant from scratch in the benchmark" if method == "auto" else ", forced"))


def training_plan(device: str, pretrained: bool) -> TrainingPlan:
    """The schedule and optimiser of a regime: SSS_METHOD's with weights; lr 1e-3 from scratch; a time budget on a CPU."""
    training = TrainingPlan() if pretrained else replace(TrainingPlan(), learning_rate=FROM_SCRATCH_LEARNING_RATE)
    if device == "cpu":
        training = replace(training, iterations_per_epoch=CPU_ITERATIONS_PER_EPOCH, time_budget_min=CPU_TIME_BUDGET_MIN)
    return training


def weights_note(variant: str, checkpoint, forced: bool) -> str:
    """Why the plan is (not) pretrained, as recorded in plans.json."""
    if checkpoint is not None:
        return f"pretrained: official SAM-2 {variant} weights {checkpoint}"
    if forced:
        return (f"from scratch: SAM-2 {variant} was forced and no official checkpoint of it was found; "
                "the encoder is randomly initialised")
    return (f"from scratch: no SAM-2 checkpoint found, so the reduced {variant!r} Hiera (the variant that learned from "
            "random initialisation in the semi-supervised benchmark) at lr 1e-3; re-plan after sss_download_sam2")


def choose_model(in_channels: int, num_classes: int, patch_side: int, gpu_memory_gib: float,
                 forced_variant: str | None = None, encoder: str = "hiera", candidates: tuple[str, ...] = AUTO_VARIANTS,
                 max_batch: int = MAX_BATCH, mixed_precision: bool = True, refine: bool = True,
                 dfe_levels: tuple[int, ...] = DEFAULT_DFE_LEVELS) -> tuple[str, int, int, float]:
    """Choose (variant, patch side, batch, estimated GiB): the first candidate at the full patch, else shrink."""
    budget = int(gpu_memory_gib * GIB)
    variants = (forced_variant,) if forced_variant else candidates
    side = patch_side
    while side >= MIN_PATCH:
        for variant in variants:
            config = ModelConfig(in_channels, num_classes, side, variant, encoder, refine, dfe_levels)
            batch, estimate = fit_batch(config, budget, max_batch, mixed_precision=mixed_precision)  # CUDA trains under bf16
            logger.debug("variant %s patch %d: batch %d (%.2f GiB)", variant, side, batch, estimate.total_gib)
            if batch >= MIN_BATCH:
                if side < patch_side:
                    logger.warning("patch reduced from %d to %d to fit %.1f GiB", patch_side, side, gpu_memory_gib)
                return variant, side, batch, estimate.total_gib
        variants = variants[-1:]  # past the full patch only the smallest candidate shrinks further
        side -= PATCH_MULTIPLE
    raise PlansError(f"no SAM-2 configuration fits {gpu_memory_gib:.1f} GiB with batch {MIN_BATCH} "
                     f"(even {variants[-1]} at {MIN_PATCH}x{MIN_PATCH}); give more memory with --gpu-memory-gb")


def _normalization(channel_name: str, stats) -> ChannelNormalization:
    scheme = scheme_for_channel(channel_name)
    if scheme != "ct":
        return ChannelNormalization(scheme)
    return ChannelNormalization("ct", stats.percentile_00_5, stats.percentile_99_5, stats.mean, max(stats.std, 1e-8))
