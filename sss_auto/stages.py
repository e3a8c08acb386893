"""The planning stages with their files: fingerprint.json, plans.json and the case cache.

Each function reads the previous stage's file and writes its own atomically; the CLIs call these.
"""

from __future__ import annotations

import logging
from pathlib import Path

from planners.fingerprint import Fingerprint, extract_fingerprint, load_fingerprint
from planners.planner import CPU_TIME_BUDGET_MIN, DEFAULT_GPU_MEMORY_GIB, detect_gpu_memory_gib, plan
from planners.target import PlanTarget, find_weights, searched_places
from planners.plans import Plans, load_plans, save_plans
from preprocessing.runner import preprocess_dataset
from sss_auto import paths
from sss_auto.dataset.integrity import check_dataset_structure
from sss_auto.dataset.raw import RawDataset
from sss_auto.io.atomic import write_json_atomic
from sss_auto.io.serialization import to_dict

logger = logging.getLogger(__name__)


def preprocessed_folder(dataset: RawDataset) -> Path:
    """SSS_preprocessed/<dataset name>."""
    return paths.root("preprocessed") / dataset.name


def fingerprint_stage(dataset: RawDataset, num_processes: int, clean: bool = False, progress: bool = True) -> Fingerprint:
    """Return the fingerprint, reusing fingerprint.json unless `clean`."""
    path = preprocessed_folder(dataset) / "fingerprint.json"
    if path.is_file() and not clean:
        logger.info("reusing %s (--clean recomputes it)", path)
        return load_fingerprint(path)
    fingerprint = extract_fingerprint(dataset, num_processes, progress)
    write_json_atomic(to_dict(fingerprint), path)
    logger.info("fingerprint of %d case(s) written to %s", len(fingerprint.cases), path)
    return fingerprint


def plan_stage(dataset: RawDataset, fingerprint: Fingerprint, gpu_memory_gib: float | None = None,
               sam2_variant: str | None = None, encoder: str = "hiera", sam2_checkpoint: Path | None = None,
               method: str = "auto") -> Plans:
    """Plan for the machine and the SAM-2 weights found (planners/target.py) and write plans.json.

    A given `gpu_memory_gib` plans for a CUDA GPU of that size; otherwise the detected GPU, or
    this machine's CPU when there is none.
    """
    target = plan_target(gpu_memory_gib, find_weights(sam2_checkpoint, sam2_variant))
    plans = plan(fingerprint, target, sam2_variant, encoder=encoder, method=method)
    path = preprocessed_folder(dataset) / "plans.json"
    save_plans(plans, path)
    for name, config in plans.configurations.items():
        logger.info("%s: planned for %s, spacing %s mm, patch %s, batch %d+%d%s, SAM-2 %s, %s, estimated step %.2f GiB "
                    "of %.1f GiB, lr %g, %s", name, config.device, tuple(round(s, 3) for s in config.spacing_mm),
                    config.patch_size, config.batch_size_labeled, config.batch_size_unlabeled,
                    f" clips of {config.clip_length} slices, {config.memory_frames} memory frames ({config.memory_policy})"
                    if config.clip_length else "", config.sam2_variant, _parts(config),
                    config.estimated_step_memory_gib, config.gpu_memory_target_gib, config.training.learning_rate,
                    f"time budget {config.training.time_budget_min:g} min" if config.training.time_budget_min
                    else f"{config.training.num_epochs} epochs x {config.training.iterations_per_epoch} iterations")
        if config.pretrained:
            logger.info("%s: %s", name, config.weights_note)
        else:
            logger.warning("%s: NOT PRETRAINED, %s (looked in: %s)", name, config.weights_note, searched_places())
    logger.info("plans written to %s", path)
    return plans


def plan_target(gpu_memory_gib: float | None, weights: dict[str, Path]) -> PlanTarget:
    """The device and memory to plan for: the given GPU budget, the detected GPU, else this CPU."""
    if gpu_memory_gib is not None:
        return PlanTarget("cuda", gpu_memory_gib, weights, "--gpu-memory-gb")
    detected = detect_gpu_memory_gib()
    if detected is not None:
        logger.info("GPU memory detected: %.1f GiB usable", detected)
        return PlanTarget("cuda", detected, weights, "detected GPU")
    logger.warning("no CUDA GPU found: planning for training on this CPU (reduced batch and patch, a %g-minute time "
                   "budget); give --gpu-memory-gb to plan for a GPU instead", CPU_TIME_BUDGET_MIN)
    return PlanTarget("cpu", DEFAULT_GPU_MEMORY_GIB, weights, "CPU default")


def preprocess_stage(dataset: RawDataset, configurations: list[str], num_processes: int, progress: bool = True) -> Path:
    """Cache labeled and unlabeled cases for each configuration, using the plans.json on disk."""
    folder = preprocessed_folder(dataset)
    plans = load_plans(folder / "plans.json")
    subsets = check_dataset_structure(dataset)
    cases = subsets["labeled"] + subsets["unlabeled"]
    for data in dict.fromkeys(plans.data_folder(c) for c in configurations):  # 2d_memory reads 2d's arrays
        done, skipped = preprocess_dataset(cases, plans, data, folder / data, num_processes, progress)
        logger.info("%s: %d case(s) preprocessed, %d already done, in %s", data, done, skipped, folder / data)
    return folder


def _parts(config) -> str:
    """The SSS parts a configuration's plan switches on, in words."""
    if not config.refine:
        return "weak-to-strong, coarse head"
    return "PCSW + SAM-2 refinement, no DFE" if not config.dfe_levels else "full SSS"
