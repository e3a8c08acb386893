"""Build a TrainConfig from the plans on disk and user overrides (shared by sss_train and sss_demo)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from planners.plans import configuration_problems, load_plans
from sss_auto.dataset.raw import RawDataset
from sss_auto.errors import SSSError
from sss_auto.networks.dfe_modes import DFE_INPUTS
from sss_auto.networks.checkpoints import find_checkpoint
from sss_auto.stages import preprocessed_folder
from sss_auto.training.config import Ablation, TrainConfig

logger = logging.getLogger(__name__)
OVERRIDABLE = ("num_epochs", "iterations_per_epoch", "warmup_epochs", "learning_rate", "pcsw_refresh_epochs",
               "time_budget_min", "confidence_mode", "unlabeled_ce", "ema_restart_at_ssl",
               "pseudo_label_alignment", "unlabeled_rampup_epochs",
               "unlabeled_weight", "strong_photometric", "warmup_fraction")


def make_train_config(dataset: RawDataset, configuration: str, fold: str, *, overrides: dict[str, float | str] | None = None,
                      batch_size: int | None = None, unlabeled_batch_size: int | None = None, ablation: Ablation = Ablation(), seed: int = 0, device: str = "cpu",
                      sam2_checkpoint: Path | None = None, finetune_encoder: bool = False, num_workers: int = 1,
                      validation_tta: bool = True) -> TrainConfig:
    """The plan of `configuration` with the training overrides applied.

    Args:
        overrides: TrainingPlan fields (see OVERRIDABLE) to replace; None values are ignored.
        sam2_checkpoint: None looks for a checkpoint of the planned variant downloaded by sss_download_sam2.

    Raises:
        SSSError: a non-positive override or an invalid τ; PlansError: missing or invalid plans.json.
    """
    plan = load_plans(preprocessed_folder(dataset) / "plans.json").configuration(configuration)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for name, value in overrides.items():
        if name not in OVERRIDABLE:
            raise SSSError(f"{name} cannot be overridden; choose from {', '.join(OVERRIDABLE)}")
        if isinstance(value, (bool, str)):
            continue  # checked with the whole plan below
        if value < 0 or (value == 0 and name not in ("warmup_epochs", "unlabeled_rampup_epochs")):
            raise SSSError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if "warmup_epochs" in overrides and "warmup_fraction" not in overrides:
        overrides["warmup_fraction"] = None  # an explicit number of warm-up epochs replaces the planned share
    plan = replace(plan, training=replace(plan.training, **overrides))
    if batch_size is not None:
        if batch_size < 1:
            raise SSSError(f"--batch-size must be at least 1, got {batch_size}")
        plan = replace(plan, batch_size_labeled=batch_size, batch_size_unlabeled=batch_size)
    if unlabeled_batch_size is not None:
        if unlabeled_batch_size < 1:
            raise SSSError(f"--unlabeled-batch-size must be at least 1, got {unlabeled_batch_size}")
        plan = replace(plan, batch_size_unlabeled=unlabeled_batch_size)
    problems = configuration_problems(f"configurations.{configuration} (command-line overrides applied)", plan)
    if problems:
        raise SSSError("; ".join(problems))
    if ablation.pcsw_tau is not None and not 0 < ablation.pcsw_tau <= 1:
        raise SSSError(f"--pcsw-tau must be in (0, 1], got {ablation.pcsw_tau}")
    if ablation.dfe_inputs is not None and ablation.dfe_inputs not in DFE_INPUTS:
        raise SSSError(f"--dfe-inputs must be one of {', '.join(DFE_INPUTS)}, got {ablation.dfe_inputs!r}")
    if ablation.strong_views not in (1, 2):
        raise SSSError(f"--strong-views must be 1 or 2, got {ablation.strong_views}")
    if sam2_checkpoint is None:
        sam2_checkpoint = find_checkpoint(plan.sam2_variant)
        if sam2_checkpoint is not None:
            logger.info("using the downloaded SAM-2 checkpoint %s", sam2_checkpoint)
    return TrainConfig(dataset.name, configuration, fold, plan, ablation, seed, device, sam2_checkpoint,
                       finetune_encoder, num_workers, validation_tta)
