"""`fit`: epochs and iterations, when to refresh the PCSW bank, validate and checkpoint."""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm import tqdm

from planners.plans import Plans
from sss_auto.data.cache import CaseCache
from sss_auto.data.loader import LoaderSpec, epoch_loader, iterate_safely
from sss_auto.data.strong import strong_view
from sss_auto.inference.two_pass import InferenceSettings
from sss_auto.io.atomic import write_json_atomic
from sss_auto.io.serialization import to_dict
from sss_auto.prompting.bank import PromptBank
from sss_auto.prompting.pcsw import ClassConstraint
from sss_auto.training import progress
from sss_auto.training.build import SSSModules, poly_lr
from sss_auto.training.checkpoint import load_checkpoint, save_checkpoint
from sss_auto.training.config import TrainConfig
from sss_auto.training.distributed import DistInfo, average_gradients, barrier, check_in_sync
from sss_auto.training.ema import ema_decay, update_teacher
from sss_auto.training.pcsw_bank import refresh_bank
from sss_auto.training.pseudo_labels import ClassPrior, summarize_epoch, vanished_classes
from sss_auto.training.steps import sss_step, supervised_step
from sss_auto.training.validation import export_and_score, validate_cached

logger = logging.getLogger(__name__)
LATEST, BEST, FINAL = "checkpoint_latest.pth", "checkpoint_best.pth", "checkpoint_final.pth"
PER_CLASS_PSEUDO_LABEL = re.compile(r"^(pl|plc|pls|mask_ratio)_\d+$")  # logged on a line of their own


@dataclass
class RunContext:
    """Where a fold's data comes from and where its files go."""

    folder: Path
    cache: CaseCache
    plans: Plans
    train_ids: list[str]
    val_ids: list[str]
    unlabeled_ids: list[str]
    reference_folder: Path  # raw labels (labelsTr) of the validation cases
    constraints: dict[int, ClassConstraint]
    dist: DistInfo
    show_progress: bool = True
    priors: dict[int, ClassPrior] = field(default_factory=dict)  # labeled class prior, from the fingerprint


@dataclass
class TrainState:
    """What changes during training besides the modules (all of it goes into the checkpoint)."""

    epoch: int = 0
    iteration: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    best_dice: float = -math.inf
    best_epoch: int = -1
    bank: PromptBank = field(default_factory=PromptBank)


def fit(config: TrainConfig, run: RunContext, m: SSSModules, resume: bool = False) -> dict:
    """Train, validate every epoch, checkpoint every epoch, and finish with the full validation.

    Returns the training summary (also written as training_summary.json).
    """
    t, ablation = config.training, config.ablation
    state = _resume(run.folder / LATEST, m) if resume else TrainState()
    total = t.num_epochs * t.iterations_per_epoch
    settings = inference_settings(config)
    num_classes = m.student.config.num_classes
    started = time.time()
    for epoch in range(state.epoch, t.num_epochs):
        epoch_start = time.time()
        ssl = not ablation.supervised_only and epoch >= t.warmup_epochs
        if ssl and settings.use_prompts and m.student.refiner is not None and (
                state.bank.epoch < 0 or epoch - state.bank.epoch >= t.pcsw_refresh_epochs):
            state.bank = refresh_bank(m.teacher, run.cache, run.unlabeled_ids, settings, run.constraints, epoch,
                                      run.show_progress and run.dist.is_main, run.dist.rank, run.dist.world_size)
        spec = LoaderSpec(run.cache.folder, tuple(run.train_ids), tuple(run.unlabeled_ids) if ssl else (),
                          config.plan.patch_size[0], config.plan.batch_size_labeled,
                          config.plan.batch_size_unlabeled if ssl else 0, num_classes - 1, t.foreground_oversampling)
        loader = epoch_loader(spec, state.bank, t.iterations_per_epoch, config.seed, epoch, run.dist.rank,
                              config.num_workers, pin_memory=config.device.startswith("cuda"))
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 101 + run.dist.rank)
        sums: dict[str, float] = {}
        m.student.train()
        bar = tqdm(iterate_safely(loader), total=t.iterations_per_epoch, desc=f"epoch {epoch + 1}/{t.num_epochs}", unit="it",
                   disable=None if run.show_progress and run.dist.is_main else True)
        for batch in bar:
            lr = poly_lr(m.optimizer, state.iteration, total, t.poly_exponent)
            batch = batch.to(run.dist.device)
            if not settings.use_prompts:
                batch = replace(batch, prompts_l=_no_prompts(batch.prompts_l), prompts_u=None)
            with mixed_precision(run.dist.device):
                if ssl:
                    views = [strong_view(batch.x_w, generator) for _ in range(ablation.strong_views)]
                    out = sss_step(batch, m.student, m.teacher, views, t.confidence_threshold)
                else:
                    out = supervised_step(batch, m.student)
            m.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            trainable = [p for p in m.student.parameters() if p.requires_grad]
            average_gradients(trainable)
            torch.nn.utils.clip_grad_norm_(trainable, t.grad_clip_norm)
            m.optimizer.step()
            if m.teacher is not None:
                update_teacher(m.teacher, m.student, ema_decay(state.iteration, t.ema_decay))
            state.iteration += 1
            for key, value in out.metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{out.metrics['loss']:.3f}")
        values = {key: value / t.iterations_per_epoch for key, value in sums.items()}
        values.update(epoch=epoch + 1, lr=lr, epoch_time_s=time.time() - epoch_start)
        if ssl:
            values.update(summarize_epoch(values, num_classes))
            _warn_vanished(values, run)
        if ssl and state.bank.epoch >= 0:
            values.update(pcsw_acceptance=state.bank.acceptance, pcsw_fallback=state.bank.fallback)
        state.epoch = epoch + 1
        if run.dist.is_main:
            if run.val_ids:
                m.student.eval()
                values.update(validate_cached([m.student], run.cache, run.val_ids, replace(settings, tta=False), run.constraints))
            progress.append(state.history, values)
            _log_epoch(values, run)
            _save_epoch(config, run, m, state, values)
        barrier()
    check_in_sync(m.student)
    if run.dist.world_size > 1:
        logger.info("%d ranks finished with identical weights", run.dist.world_size)
    summary = _finish(config, run, m, state, time.time() - started) if run.dist.is_main else {}
    barrier()
    return summary


def inference_settings(config: TrainConfig, tta: bool | None = None, device: str | None = None,
                       batch_size: int | None = None) -> InferenceSettings:
    """Inference as the predictor does it, with the run's patch, τ and ablations (defaults: the run's own)."""
    return InferenceSettings(patch=config.plan.patch_size[0], tta=config.validation_tta if tta is None else tta,
                             batch_size=batch_size or max(config.plan.batch_size_labeled, 1),
                             device=device or config.device, pcsw_tau=config.pcsw_tau,
                             use_prompts=config.ablation.use_pcsw)


def _no_prompts(prompts):
    return replace(prompts, valid=torch.zeros_like(prompts.valid))


def mixed_precision(device: str):
    """bf16 autocast on CUDA (no loss scaling needed); full precision on the CPU."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _warn_vanished(values: dict[str, float], run: RunContext) -> None:
    names = {v: k for k, v in run.plans.labels.items()}
    for k, share, prior in vanished_classes(values, run.priors):
        logger.warning("class %s (%d) has vanished from the confident pseudo labels: %.2g of weak-view pixels "
                       "against %.2g of labeled voxels; the unlabeled loss now teaches the student to miss it",
                       names.get(k, k), k, share, prior)


def _log_epoch(values: dict[str, float], run: RunContext) -> None:
    shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items()
                      if k not in ("epoch", "epoch_time_s") and not PER_CLASS_PSEUDO_LABEL.match(k) and not math.isnan(v))
    logger.info("epoch %d (%.1f s): %s", int(values["epoch"]), values["epoch_time_s"], shown)
    if "pl_0" in values:
        names = {v: k for k, v in run.plans.labels.items()}
        parts = []
        for k in sorted(v for v in names if v > 0):
            prior = run.priors.get(k)
            parts.append(f"{names[k]} {values.get(f'pl_{k}', math.nan):.2e}/{values.get(f'plc_{k}', math.nan):.2e}"
                         f" mask {values.get(f'mask_ratio_{k}', math.nan):.2f}"
                         + (f" (labeled {prior.voxel_fraction:.2e})" if prior is not None else ""))
        logger.info("pseudo labels per class, share of weak-view pixels all/confident: %s", "; ".join(parts))


def checkpoint_state(config: TrainConfig, m: SSSModules, state: TrainState) -> dict:
    """Everything needed to continue: modules, optimizer, history, bank, RNG, epoch."""
    return {"config": to_dict(config), "epoch": state.epoch, "iteration": state.iteration,
            "student": m.student.state_dict(), "teacher": m.teacher.state_dict() if m.teacher is not None else {},
            "optimizer": m.optimizer.state_dict(), "history": state.history,
            "best": {"dice": state.best_dice, "epoch": state.best_epoch}, "bank": state.bank.state_dict(),
            "rng": {"torch": torch.get_rng_state()}}


def _save_epoch(config: TrainConfig, run: RunContext, m: SSSModules, state: TrainState, values: dict[str, float]) -> None:
    dice = values.get("dice_mean", math.nan)
    improved = not math.isnan(dice) and dice > state.best_dice
    if improved:
        state.best_dice, state.best_epoch = dice, state.epoch
    ckpt = checkpoint_state(config, m, state)
    save_checkpoint(ckpt, run.folder / LATEST)
    if improved:
        save_checkpoint(ckpt, run.folder / BEST)
        logger.info("new best mean validation Dice %.4f at epoch %d", dice, state.epoch)
    class_names = {v: k for k, v in run.plans.labels.items() if v > 0}
    progress.plot_progress(state.history, class_names, run.folder / "progress.png", run.priors)


def _resume(path: Path, m: SSSModules) -> TrainState:
    ckpt = load_checkpoint(path)
    m.student.load_state_dict(ckpt["student"])
    if m.teacher is not None:
        m.teacher.load_state_dict(ckpt["teacher"])
    m.optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    state = TrainState(ckpt["epoch"], ckpt["iteration"], ckpt["history"], ckpt["best"]["dice"], ckpt["best"]["epoch"],
                       PromptBank.from_state_dict(ckpt["bank"]))
    logger.info("continuing from %s: epoch %d done, iteration %d", path, state.epoch, state.iteration)
    return state


def _finish(config: TrainConfig, run: RunContext, m: SSSModules, state: TrainState, duration_s: float) -> dict:
    save_checkpoint(checkpoint_state(config, m, state), run.folder / FINAL)
    validation = final_validation(config, run, m)
    summary = {
        "dataset": config.dataset, "configuration": config.configuration, "fold": config.fold,
        "run": config.ablation.run_name(), "sam2_variant": config.plan.sam2_variant, "encoder": config.plan.encoder,
        "sam2_pretrained": m.student.pretrained_encoder,
        "sam2_note": "pretrained SAM-2 weights" if m.student.pretrained_encoder else
        "RANDOMLY INITIALISED SAM-2 encoder (no checkpoint given): not pretrained",
        "epochs": state.epoch, "iterations": state.iteration, "duration_s": round(duration_s, 1),
        "device": config.device, "world_size": run.dist.world_size,
        "best_epoch": state.best_epoch, "best_proxy_dice": None if math.isinf(state.best_dice) else state.best_dice,
        "final_validation": validation,
        "last_epoch": {k: v[-1] for k, v in state.history.items() if v and not math.isnan(v[-1])},
    }
    write_json_atomic(summary, run.folder / "training_summary.json")
    logger.info("training finished; summary in %s", run.folder / "training_summary.json")
    return summary


def final_validation(config: TrainConfig, run: RunContext, m: SSSModules) -> dict | None:
    """Full two-pass inference with TTA on the validation cases, exported and scored (None without cases)."""
    if not run.val_ids:
        return None
    m.student.eval()
    summary = export_and_score([m.student], run.cache, run.val_ids, run.reference_folder, run.plans,
                               inference_settings(config), run.constraints, run.folder / "validation", False)
    logger.info("final validation (original geometry, TTA %s): mean Dice %s per class %s",
                "on" if config.validation_tta else "off", _fmt(summary["mean"]["dice"]),
                {k: _fmt(v["dice"]) for k, v in summary["mean_per_class"].items()})
    return {"mean": summary["mean"], "mean_per_class": summary["mean_per_class"]}


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
