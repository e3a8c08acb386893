"""Resolve plans and user overrides into the run's TrainConfig (shared by sss_train and sss_demo)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from planners.plans import (TRAINING_RANGES, ConfigurationPlan, Plans, configuration_problems, flag_of, load_plans,
                            overridable_fields, range_problem)
from sss_auto.configuration import Ablation, TrainConfig
from sss_auto.dataset.raw import RawDataset
from sss_auto.errors import SSSError
from sss_auto.networks.checkpoints import find_checkpoint
from sss_auto.networks.dfe_modes import DFE_INPUTS
from sss_auto.stages import preprocessed_folder

logger = logging.getLogger(__name__)
OVERRIDABLE = tuple(f.name for f in overridable_fields())  # sss_train flags whose dest is the field
RANGES = {name: (low, high, low_allowed) for name, low, high, low_allowed in TRAINING_RANGES}


def check_weights_match_plan(plan: ConfigurationPlan, sam2_checkpoint: Path | None, dataset_name: str) -> None:
    """Refuse a run whose weights are not the ones the plan was made for (pretrained vs from scratch).

    Raises:
        SSSError: naming the plan's regime, the weights found, and the command that fixes it.
    """
    if plan.pretrained and sam2_checkpoint is None:
        raise SSSError(f"plans.json was made for pretrained SAM-2 {plan.sam2_variant} weights ({plan.sam2_checkpoint}), "
                       f"and none are found: pass --sam2-checkpoint FILE, set SSS_SAM2_CHECKPOINT, run "
                       f"sss_download_sam2 --variant {plan.sam2_variant}, or re-plan without them: sss_plan -d {dataset_name}")
    if not plan.pretrained and sam2_checkpoint is not None:
        raise SSSError(f"plans.json was made for training from scratch ({plan.weights_note or 'planned without weights'}), "
                       f"but SAM-2 weights are given or downloaded ({sam2_checkpoint}): re-plan for them with "
                       f"sss_plan -d {dataset_name} (it finds them), or train without them (unset SSS_SAM2_CHECKPOINT, "
                       "no --sam2-checkpoint)")


def make_train_config(dataset: RawDataset, configuration: str, fold: str, **options) -> TrainConfig:
    """`resolve` with the dataset's plans.json (sss_train and sss_demo).

    Raises:
        PlansError: missing or invalid plans.json; SSSError: as `resolve`.
    """
    return resolve(load_plans(preprocessed_folder(dataset) / "plans.json"), dataset.name, configuration, fold, **options)


def resolve(plans: Plans, dataset_name: str, configuration: str, fold: str, *,
            overrides: dict[str, float | str] | None = None, batch_size: int | None = None,
            unlabeled_batch_size: int | None = None, **run) -> TrainConfig:
    """The one route from plans and user overrides to the run's TrainConfig (its model and inference included).

    Args:
        overrides: TrainingPlan fields (see OVERRIDABLE) to replace; None values are ignored.
        batch_size, unlabeled_batch_size: replace the plan's (the first sets both streams).
        run: TrainConfig fields (ablation, seed, device, num_workers, ...); those not given keep TrainConfig's
            defaults. sam2_checkpoint None or not given: the one the plan was made for, else one of the
            planned variant downloaded by sss_download_sam2. A plan for weights refuses to run without
            them, and the other way round.

    Raises:
        SSSError: an override out of its range (named by its flag), an invalid τ, or weights that do not
            match the plan; PlansError: `configuration` is not planned.
    """
    plan = plans.configuration(configuration)
    ablation, device, sam2_checkpoint = run.get("ablation", Ablation()), run.get("device", TrainConfig.device), run.get("sam2_checkpoint")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for name, value in overrides.items():
        if name not in OVERRIDABLE:
            raise SSSError(f"{name} cannot be overridden; choose from {', '.join(OVERRIDABLE)}")
        limits = RANGES.get(name)  # the others (choices, budget, warm-up share) are checked with the whole plan below
        if limits and not isinstance(value, (bool, str)) and (problem := range_problem(flag_of(name), value, *limits)):
            raise SSSError(problem)
    if "warmup_epochs" in overrides and "warmup_fraction" not in overrides:
        overrides["warmup_fraction"] = None  # an explicit number of warm-up epochs replaces the planned share
    if "num_epochs" in overrides and "time_budget_min" not in overrides and plan.training.time_budget_min is not None:
        logger.info("--epochs %d replaces the planned time budget of %g min", overrides["num_epochs"],
                    plan.training.time_budget_min)
        overrides["time_budget_min"] = None  # an explicit number of epochs replaces the planned budget
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
    if plan.training.cutmix_source == "bidirectional" and ablation.strong_views != 2:
        raise SSSError("cutmix_source bidirectional pastes one way in each of the 2 strong views; with "
                       f"--strong-views {ablation.strong_views} use --cutmix-source labeled or unlabeled")
    if plan.clip_length and ablation.strong_views != Ablation.strong_views:
        raise SSSError(f"--strong-views applies to slices only: {configuration} trains one strong clip per unlabeled "
                       "clip (each slice jittered on its own); leave the flag out")
    if plan.clip_length and ablation.dfe_inputs == "weak_strong":
        raise SSSError(f"--dfe-inputs weak_strong applies to slices only: {configuration} pairs each strong clip's "
                       "features with a channel-dropout copy of themselves (strong_pair)")
    if sam2_checkpoint is None and plan.sam2_checkpoint and Path(plan.sam2_checkpoint).is_file():
        sam2_checkpoint = Path(plan.sam2_checkpoint)
        logger.info("using the SAM-2 checkpoint the plan was made for: %s", sam2_checkpoint)
    if sam2_checkpoint is None:
        sam2_checkpoint = find_checkpoint(plan.sam2_variant)
        if sam2_checkpoint is not None:
            logger.info("using the downloaded SAM-2 checkpoint %s", sam2_checkpoint)
    check_weights_match_plan(plan, sam2_checkpoint, dataset_name)
    if plan.device != ("cuda" if device.startswith("cuda") else "cpu"):
        logger.warning("plans.json was made for %s, this run trains on %s: patch, batch and schedule may not suit it "
                       "(re-plan on this machine with sss_plan -d %s)", plan.device, device, dataset_name)
    plans = replace(plans, configurations={**plans.configurations, configuration: plan})
    return TrainConfig(dataset=dataset_name, configuration=configuration, fold=fold, plans=plans,
                       **{**run, "sam2_checkpoint": sam2_checkpoint})
