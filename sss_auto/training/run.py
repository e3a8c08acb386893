"""Set up and run one fold: results folder, splits, cache, constraints, modules, then `fit`."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from planners.fingerprint import load_fingerprint
from sss_auto import paths
from sss_auto.configuration import TrainConfig
from sss_auto.data.cache import CaseCache
from sss_auto.dataset.raw import RawDataset
from sss_auto.dataset.splits import fold_cases, load_or_create_splits
from sss_auto.errors import CheckpointError, PlansError, SSSError
from sss_auto.io.atomic import copy_atomic, remove_stale_temporaries, write_json_atomic
from sss_auto.io.checkpoint import FINAL, LATEST
from sss_auto.io.lock import folder_lock
from sss_auto.io.checkpoint import load_checkpoint
from sss_auto.io.serialization import to_dict
from sss_auto.method.pseudo_labels import priors_from_fingerprint
from sss_auto.prompting.constraints import constraints_from_fingerprint
from sss_auto.report.run_report import write_fold_report
from sss_auto.stages import preprocessed_folder
from sss_auto.training import progress
from sss_auto.training.build import build_modules
from sss_auto.training.distributed import DistInfo, broadcast_module
from sss_auto.training.loop import RunContext, final_validation, fit

logger = logging.getLogger(__name__)


def run_folder(dataset_name: str, run_name: str, configuration: str) -> Path:
    """SSS_results/<dataset>/<run>__<configuration> (one folder per ablation, like nnU-Net's trainer folders)."""
    return paths.root("results") / dataset_name / f"{run_name}__{configuration}"


def fold_folder(dataset_name: str, run_name: str, configuration: str, fold: str) -> Path:
    return run_folder(dataset_name, run_name, configuration) / f"fold_{fold}"


def prepare_run(dataset: RawDataset, config: TrainConfig, dist: DistInfo, show_progress: bool,
                rehash_cache: bool = False) -> RunContext:
    """Read cache, fingerprint and splits; copy plans.json and dataset.json next to the folds."""
    pre = preprocessed_folder(dataset)
    cache = CaseCache(pre / config.plans.data_folder(config.configuration))
    labeled, unlabeled = cache.ids("labeled"), cache.ids("unlabeled")
    if not labeled:
        raise PlansError(f"{cache.folder}: no labeled case is preprocessed; training needs at least two")
    if not (pre / "splits_final.json").exists():
        source = dataset.folder / "splits_final.json" if (dataset.folder / "splits_final.json").is_file() \
            else paths.nnunet_splits(dataset.folder)
        if source is not None:
            copy_atomic(source, pre / "splits_final.json")
            logger.info("using the splits in %s (%s)", source, "the converter's" if source.parent == dataset.folder
                        else "nnU-Net's folds of this dataset, so both compare on the same cases")
    splits = load_or_create_splits(pre / "splits_final.json", labeled)
    train_ids, val_ids = fold_cases(splits, config.fold, labeled)
    if config.training.reliability_gate and not val_ids:
        raise PlansError(f"training.reliability_gate measures the pseudo labels on the fold's validation cases, and "
                         f"fold {config.fold} has none: train a fold 0-4, or leave the gate off (--no-reliability-gate)")
    if not config.ablation.supervised_only and not unlabeled:
        logger.warning("no unlabeled cases in %s: the weak-to-strong loss has nothing to learn from", cache.folder)
    if dist.is_main:
        hashed = cache.verify(train_ids + val_ids + unlabeled, show_progress, rehash_cache)
        logger.info("cache verified: %d array(s) hashed now, the others unchanged since their last check", hashed)
    folder = fold_folder(dataset.name, config.ablation.run_name(), config.configuration, config.fold)
    folder.mkdir(parents=True, exist_ok=True)
    if dist.is_main:
        copy_atomic(pre / "plans.json", folder.parent / "plans.json")
        copy_atomic(dataset.folder / "dataset.json", folder.parent / "dataset.json")
        copy_atomic(pre / "fingerprint.json", folder.parent / "fingerprint.json")
    fingerprint = load_fingerprint(pre / "fingerprint.json")
    constraints = constraints_from_fingerprint(fingerprint, config.plans)
    logger.info("fold %s: %d labeled training case(s), %d validation case(s), %d unlabeled case(s)",
                config.fold, len(train_ids), len(val_ids), len(unlabeled))
    return RunContext(folder=folder, cache=cache, train_ids=train_ids, val_ids=val_ids,
                      unlabeled_ids=unlabeled, reference_folder=dataset.folder / "labelsTr", constraints=constraints,
                      dist=dist, show_progress=show_progress, priors=priors_from_fingerprint(fingerprint))


def describe_run(config: TrainConfig, dist: DistInfo) -> str:
    """One line for the log: where and how the run trains, and its schedule."""
    device = dist.device
    if device.startswith("cuda"):
        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))}) with bf16 autocast"
    else:
        device = f"{device} in float32"
    plan, t = config.plan, config.training
    return (f"training on {device}, {dist.world_size} process(es): SAM-2 {plan.sam2_variant}, patch "
            f"{plan.patch_size[0]}x{plan.patch_size[1]}, batch {plan.batch_size_labeled} labeled + "
            f"{0 if config.ablation.supervised_only else plan.batch_size_unlabeled} unlabeled per process, "
            + (f"clips of {plan.clip_length} slices through {plan.memory_frames} memory frames "
               f"({config.model.memory_policy}), " if plan.clip_length else "")
            + (f"epochs for a {t.time_budget_min:g}-minute budget x {t.iterations_per_epoch} iterations, "
               if t.time_budget_min is not None else f"{t.num_epochs} epochs x {t.iterations_per_epoch} iterations, ")
            + ("supervised only" if config.ablation.supervised_only else
               f"supervised warm-up {t.warmup_fraction:.0%} of the {'budget' if t.time_budget_min else 'epochs'}"
               if t.warmup_fraction is not None else f"{t.warmup_epochs} supervised warm-up epochs"))


def train_fold(dataset: RawDataset, config: TrainConfig, dist: DistInfo, resume: bool = False, val_only: bool = False,
               show_progress: bool = True, rehash_cache: bool = False) -> dict:
    """Train (or continue, or only validate) one fold, holding the fold folder's lock on the main process.

    Refused while another process holds the fold folder or writes the preprocessed folder, which
    this one then holds a reader's lock on (no re-planning or re-preprocessing under a running fold).
    """
    if not dist.is_main:
        return _train_fold(dataset, config, dist, resume, val_only, show_progress, rehash_cache)
    with (folder_lock(preprocessed_folder(dataset), shared=True),
          folder_lock(fold_folder(dataset.name, config.ablation.run_name(), config.configuration, config.fold))):
        return _train_fold(dataset, config, dist, resume, val_only, show_progress, rehash_cache)


def _train_fold(dataset: RawDataset, config: TrainConfig, dist: DistInfo, resume: bool, val_only: bool,
                show_progress: bool, rehash_cache: bool) -> dict:
    run = prepare_run(dataset, config, dist, show_progress, rehash_cache)
    handler = progress.add_log_file(run.folder / "training_log.txt") if dist.is_main else None
    try:
        logger.info("%s", describe_run(config, dist))
        modules = build_modules(config)
        if val_only:
            result = _validate_only(config, run, modules)
            _report(run.folder, dataset, dist)
            return result
        latest = run.folder / LATEST
        if latest.exists() and not resume:
            raise CheckpointError(f"{run.folder} already holds a training run; continue it with --c, "
                                  "or delete the folder to start over")
        if resume and dist.is_main:
            for folder in (run.folder, run.folder / "validation", run.folder / "validation" / "coarse"):
                remove_stale_temporaries(folder)
        if resume and not latest.exists():
            logger.info("--c: no checkpoint in %s yet; starting from the beginning", run.folder)
            resume = False
        broadcast_module(modules.student)
        if modules.teacher is not None:
            broadcast_module(modules.teacher)
        if dist.is_main:
            write_json_atomic(to_dict(config), run.folder / "training_config.json")
        result = fit(config, run, modules, resume)
        _report(run.folder, dataset, dist)
        return result
    finally:
        if handler is not None:
            progress.remove_log_file(handler)


def _report(fold_folder: Path, dataset: RawDataset, dist: DistInfo) -> None:
    """The fold's report (sss_report) after its final validation; a failure is logged, never hides the trained fold."""
    if not dist.is_main or not (fold_folder / "validation" / "summary.json").is_file():
        return
    try:
        logger.info("report: %s", write_fold_report(fold_folder, dataset.folder))
    except (SSSError, OSError, ValueError, KeyError, TypeError) as err:  # a finished fold never fails for its report
        logger.error("the fold's report could not be written (%s); checkpoints and validation are saved, make the report "
                     "with sss_report -d %s -f %s", err, dataset.name, fold_folder.name[len("fold_"):])


def _validate_only(config: TrainConfig, run: RunContext, modules) -> dict:
    path = run.folder / FINAL
    if not path.exists():
        raise CheckpointError(f"{path}: no final checkpoint; finish training first (or continue it with --c)")
    modules.student.load_trained_state(load_checkpoint(path)["student"])
    return final_validation(config, run, modules) or {}
