"""`fit`: epochs and iterations, when to refresh the PCSW bank, validate and checkpoint."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from planners.plans import TrainingPlan
from sss_auto.configuration import TrainConfig
from sss_auto.data.cache import CaseCache
from sss_auto.data.loader import LoaderSpec, epoch_loader, iterate_safely, unlabeled_shard
from sss_auto.data.pseudo_label_pool import POOL_FOLDER, PseudoLabelPool, load_pool
from sss_auto.data.strong import augment_labeled, jitter
from sss_auto.errors import SSSError
from sss_auto.inference.settings import InferenceSettings
from sss_auto.io.atomic import write_json_atomic
from sss_auto.io.checkpoint import BEST, FINAL, LATEST, load_checkpoint, save_checkpoint
from sss_auto.io.serialization import to_dict
from sss_auto.method.alignment import PriorAlignment
from sss_auto.method.pseudo_labels import ClassPrior, summarize_epoch, vanished_classes
from sss_auto.method.reliability import PseudoLabelRule, unreliable_classes
from sss_auto.method.readiness import READY_DICE, ClassReadiness, labeled_class_dice, plausible_shares
from sss_auto.method.steps import SSLSettings, self_training_step
from sss_auto.method.thresholds import ConfidenceThresholds
from sss_auto.prompting.bank import PromptBank
from sss_auto.prompting.pcsw import ClassConstraint
from sss_auto.training import progress
from sss_auto.training.budget import BudgetTracker, Schedule, format_duration, remaining_s
from sss_auto.training.bank_store import load_bank, prune_banks, save_bank
from sss_auto.training.build import SSSModules, poly_lr
from sss_auto.training.distributed import DistInfo, average_gradients, barrier, check_in_sync, gather_from_ranks
from sss_auto.training.ema import ema_decay, update_teacher
from sss_auto.training.pcsw_bank import prompt_quality, refresh_bank
from sss_auto.training.pseudo_labelling import label_pool
from sss_auto.training.step_kinds import step_kind
from sss_auto.training.validation import export_and_score, validate_cached

logger = logging.getLogger(__name__)
PER_CLASS_PSEUDO_LABEL = re.compile(r"^(pl|plc|pls|mask_ratio|tau|align|ready_dice|prompt_recall|prompt_precision|prompt_box_iou)_\d+$")  # logged on a line of their own


@dataclass(kw_only=True)
class RunContext:
    """Where a fold's data comes from and where its files go."""

    folder: Path
    cache: CaseCache
    train_ids: list[str]
    val_ids: list[str]
    unlabeled_ids: list[str]
    reference_folder: Path  # raw labels (labelsTr) of the validation cases
    constraints: dict[int, ClassConstraint]
    dist: DistInfo
    show_progress: bool = True
    priors: dict[int, ClassPrior] = field(default_factory=dict)  # labeled class prior, from the fingerprint
    vanished: set[int] = field(default_factory=set)  # classes last seen vanished from the pseudo labels

    @property
    def voxel_fractions(self) -> dict[int, float]:
        """The labeled voxel fraction of each class, from the fingerprint's prior."""
        return {k: p.voxel_fraction for k, p in self.priors.items()}


@dataclass
class TrainState:
    """What changes during training besides the modules (all of it goes into the checkpoint)."""

    epoch: int = 0
    iteration: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    best_dice: float = -math.inf
    best_epoch: int = -1
    bank: PromptBank = field(default_factory=PromptBank)
    budget: dict | None = None  # BudgetTracker.state_dict() of a run with a time budget
    thresholds: dict | None = None  # ConfidenceThresholds.state_dict()
    ssl_start_iteration: int | None = None  # when the teacher was made a copy of the student (SSL start)
    alignment: dict | None = None  # PriorAlignment.state_dict()
    readiness: dict | None = None  # ClassReadiness.state_dict(): running labeled Dice per class
    warmup_hold: int = 0  # the warm-up was held (ssl_start "ready") until at least this many epochs
    ssl_start_epoch: int | None = None  # the first semi-supervised epoch (0-based)
    unreliable: list[bool] | None = None  # per class: taught away more than found at the last measuring validation
    ssl_too_late: bool = False  # ssl_start "ready": too little of the run remained, it stays supervised to its end
    bank_file: dict | None = None  # the current bank's file reference, once written (bank_store.save_bank)
    best_bank_file: dict | None = None  # the bank file the best checkpoint names


def fit(config: TrainConfig, run: RunContext, m: SSSModules, resume: bool = False) -> dict:
    """Train, validate every epoch, checkpoint every epoch, and finish with the full validation.

    With a time budget (`TrainingPlan.time_budget_min`) the number of epochs is derived from
    measured costs (sss_auto/training/budget.py) and the poly LR is scheduled over that total.
    Returns the training summary (also written as training_summary.json).
    """
    t, ablation = config.training, config.ablation
    state = _resume(run.folder / LATEST, m) if resume else TrainState()
    settings = config.inference
    self_training = t.unlabeled_training == "self_training" and not ablation.supervised_only
    uses_bank = not ablation.supervised_only and settings.use_prompts and m.student.refiner is not None and not self_training
    schedule = Schedule(t.iterations_per_epoch, _fixed_warmup(t), not ablation.supervised_only,
                        t.pcsw_refresh_epochs if uses_bank else None)
    budget = _budget_tracker(config, state)
    timer = budget or BudgetTracker(math.inf, config.device)  # without a budget: only measures, for the duration log
    thresholds = ConfidenceThresholds(t.confidence_mode, t.confidence_threshold, m.student.config.num_classes)
    if state.thresholds is not None:
        thresholds.load_state_dict(state.thresholds)
    alignment = None
    if t.pseudo_label_alignment == "prior":
        alignment = PriorAlignment.from_voxel_fractions(run.voxel_fractions,
                                                        m.student.config.num_classes)
        if state.alignment is not None:
            alignment.load_state_dict(state.alignment)
    readiness = ClassReadiness(run.voxel_fractions, m.student.config.num_classes)
    band_shares = _foreground_band(t.foreground_band, run, m.student.config.num_classes)
    if state.readiness is not None:
        readiness.load_state_dict(state.readiness)
    gate_classes = labeled_classes(run.cache, run.train_ids) if t.ssl_start == "ready" else set()
    pool = load_pool(run.folder / POOL_FOLDER) if self_training and state.ssl_start_iteration is not None else None
    started = time.monotonic()
    while state.epoch < (budget.num_epochs if budget else t.num_epochs):
        epoch, epoch_start = state.epoch, time.monotonic()
        if schedule.ssl and state.ssl_start_iteration is None and t.ssl_start == "ready":
            planned = budget.warmup_epochs if budget and budget.warmup_epochs is not None else _fixed_warmup(t)
            remaining = _remaining_share(epoch, t.num_epochs, budget, epoch_start - started)
            if _ssl_gate_open(state, planned, budget, readiness, gate_classes, config.class_names, remaining,
                              t.ssl_min_remaining) and budget:
                budget.release_warmup()  # the rest is SSL: fewer, dearer epochs
                budget.plan(epoch_start - started, epoch, schedule, config.validation_tta, "semi-supervision starts")
                _agree(budget)
        schedule = budget.schedule(schedule) if budget else replace(
            schedule, warmup_epochs=max(_fixed_warmup(t), state.warmup_hold))
        ssl = schedule.ssl and (state.ssl_start_iteration is not None or epoch >= schedule.warmup_epochs)
        if ssl and state.ssl_start_iteration is None:
            if self_training:  # no teacher: the student labels the pool below
                state.ssl_start_iteration = state.iteration
            else:
                _start_teacher(m, state, t.ema_restart_at_ssl)
            state.ssl_start_epoch = epoch
        refresh_values = {}
        if self_training and ssl and pool is None:
            pool, refresh_values = _pseudo_label_pool(config, run, m, readiness, state)
        if uses_bank and ssl and (state.bank.epoch < 0 or epoch - state.bank.epoch >= t.pcsw_refresh_epochs):
            state.bank_file = None  # written with the next checkpoint
            state.bank = refresh_bank(m.teacher, run.cache, run.unlabeled_ids, settings, run.constraints, epoch,
                                      run.show_progress and run.dist.is_main, run.dist.rank, run.dist.world_size,
                                      state.bank, t.pcsw_refresh_fraction)
            if run.val_ids and run.dist.is_main:
                refresh_values = prompt_quality(m.teacher, run.cache, run.val_ids, settings, run.constraints)
                _log_prompt_quality(refresh_values, run, config.class_names)
            refresh_values["bank_refresh_s"] = time.monotonic() - epoch_start
            timer.record(refresh_s=refresh_values["bank_refresh_s"])

        def on_step(phase: str, seconds: float) -> None:
            if not timer.record_step(phase, seconds):  # the same iteration on every rank
                return
            if budget:
                budget.plan(epoch_start - started, epoch, schedule, config.validation_tta, f"{phase} step measured")
                _agree(budget)
            elif run.dist.is_main:
                _log_duration(timer, schedule, t.num_epochs, epoch, config.validation_tta, phase)

        def num_epochs() -> int:
            return budget.num_epochs if budget else t.num_epochs

        values = _train_epoch(config, run, m, state, settings, ssl, num_epochs, on_step, thresholds, alignment,
                              readiness, pool, band_shares) | refresh_values
        state.thresholds = thresholds.state_dict()
        state.readiness = readiness.state_dict()
        state.alignment = alignment.state_dict() if alignment is not None else None
        timer.record_epoch("ssl" if ssl else "supervised", values["iterations_s"], t.iterations_per_epoch)
        if run.dist.is_main:
            if run.val_ids:
                validation_start = time.monotonic()
                m.student.eval()
                measure = t.reliability_gate or (ssl and not self_training)  # what the pseudo labels teach
                rule = PseudoLabelRule(thresholds.values(), alignment.factors() if alignment is not None else None) \
                    if measure else None
                values.update(validate_cached([m.student], run.cache, run.val_ids, replace(settings, tta=False),
                                              run.constraints, rule))
                if measure:
                    _judge_reliability(values, state, run, config.class_names, m.student.config.num_classes,
                                       t.reliability_gate)
                timer.record(validation_s=time.monotonic() - validation_start)
            values["epoch_time_s"] = time.monotonic() - epoch_start
            progress.append(state.history, values)
            _log_epoch(values, run, config.class_names)
            if budget is None and (epoch == 0 or epoch == schedule.warmup_epochs and schedule.ssl):
                _log_duration(timer, schedule, t.num_epochs, epoch + 1, config.validation_tta, "ssl" if ssl else "supervised")
        if t.reliability_gate:
            state.unreliable = gather_from_ranks(state.unreliable)[0]  # rank 0 validated
        if budget:
            budget.check(time.monotonic() - started, state.epoch, schedule, config.validation_tta)
            _agree(budget)
            state.budget = budget.state_dict(time.monotonic() - started)
        if run.dist.is_main:
            _save_epoch(config, run, m, state, values)
        barrier()
    check_in_sync(m.student)
    if run.dist.world_size > 1:
        logger.info("%d ranks finished with identical weights", run.dist.world_size)
    summary = _finish(config, run, m, state, time.monotonic() - started, budget) if run.dist.is_main else {}
    barrier()
    return summary


def _train_epoch(config: TrainConfig, run: RunContext, m: SSSModules, state: TrainState, settings: InferenceSettings,
                 ssl: bool, num_epochs: Callable[[], int], on_step: Callable[[str, float], None],
                 thresholds: ConfidenceThresholds, alignment: PriorAlignment | None,
                 readiness: ClassReadiness, pool: PseudoLabelPool | None = None,
                 band_shares: torch.Tensor | None = None) -> dict[str, float]:
    """One epoch of supervised, SSS or (with a pseudo-labelled `pool`) self-training steps; returns its mean
    metrics (state.epoch/iteration advanced).

    `on_step(phase, seconds)` is called after every iteration with its wall time (data loading
    included); it may change `num_epochs()`, which the poly LR reads at every step.
    """
    t, ablation, epoch = config.training, config.ablation, state.epoch
    num_classes = m.student.config.num_classes
    unlabeled = unlabeled_shard(tuple(run.unlabeled_ids), config.seed, epoch, run.dist.rank, run.dist.world_size) if ssl else ()
    if ssl and run.dist.world_size > 1 and (epoch == state.ssl_start_epoch or logger.isEnabledFor(logging.DEBUG)):
        logger.info("rank %d of %d: epoch %d samples unlabeled slices from its shard of %d of the %d unlabeled case(s) "
                    "(reshuffled every epoch): %s%s", run.dist.rank, run.dist.world_size, epoch + 1, len(unlabeled),
                    len(run.unlabeled_ids), ", ".join(unlabeled[:5]), ", ..." if len(unlabeled) > 5 else "")
    spec = LoaderSpec(cache_folder=run.cache.folder, labeled_ids=tuple(run.train_ids),
                      unlabeled_ids=unlabeled, patch=config.plan.patch_size[0],
                      batch_labeled=config.plan.batch_size_labeled,
                      batch_unlabeled=config.plan.batch_size_unlabeled if ssl else 0, num_foreground=num_classes - 1,
                      foreground_oversampling=t.foreground_oversampling, clip_length=config.clip_length,
                      pseudo_labels=pool)
    loader = epoch_loader(spec, state.bank, t.iterations_per_epoch, config.seed, epoch, run.dist.rank,
                          config.num_workers, pin_memory=config.device.startswith("cuda"))
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 101 + run.dist.rank)
    labeled_generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 101 + run.dist.rank + 50_000)
    sums: dict[str, float] = {}
    steps = step_kind(config.clip_length, ablation.strong_views, t.strong_photometric, t.cutmix_source)
    diagnose, diagnostics = ssl and pool is None and steps.swap_diagnostic and bool(m.student.dfe.levels), {}
    m.student.train()

    def weight_u() -> float:
        return unlabeled_weight(t.unlabeled_weight, state.iteration - (state.ssl_start_iteration or 0),
                                t.unlabeled_rampup_epochs * t.iterations_per_epoch)

    bar = tqdm(iterate_safely(loader), total=t.iterations_per_epoch, desc=f"epoch {epoch + 1}/{num_epochs()}", unit="it",
               disable=None if run.show_progress and run.dist.is_main else True)
    start = last = time.perf_counter()
    lr = math.nan
    for batch in bar:
        lr = poly_lr(m.optimizer, state.iteration, num_epochs() * t.iterations_per_epoch, t.poly_exponent)
        batch = batch.to(run.dist.device)
        if not settings.use_prompts:
            batch = replace(batch, prompts_l=_no_prompts(batch.prompts_l), prompts_u=None)
        if t.labeled_augmentation != "standard":  # a generator of its own: the strong views' draws stay the same
            x_l, y_l = augment_labeled(batch.x_l, batch.y_l, t.labeled_augmentation, labeled_generator,
                                       t.strong_photometric)
            batch = replace(batch, x_l=x_l, y_l=y_l)
        with mixed_precision(run.dist.device):
            if pool is not None:  # the pseudo-labelled slices get the strong views' photometric jitter
                batch = replace(batch, x_w=jitter(batch.x_w, generator, t.strong_photometric))
                out = self_training_step(batch, m.student, weight_u())
            elif ssl:
                ignored = ignored_classes(t, readiness, state.unreliable)
                ssl_settings = SSLSettings(thresholds.values(), config.dfe_inputs,
                                           unlabeled_ce=t.unlabeled_ce,
                                           alignment=alignment.factors() if alignment is not None else None,
                                           unlabeled_weight=weight_u(), unready=ignored,
                                           unready_shares=readiness.shares if ignored is not None else None,
                                           band_shares=band_shares)
                # the swap diagnostic once per SSL epoch, before the step changes the weights
                out, found = steps.semi_supervised(batch, m.student, m.teacher, ssl_settings, generator, diagnose)
                if found:
                    diagnostics, diagnose = found, False
                thresholds.update(out.pseudo_labels.conf, out.pseudo_labels.y_hat)
                if alignment is not None:
                    alignment.update(out.pseudo_labels.mean_probabilities)
            else:
                out = steps.supervised(batch, m.student)
        readiness.update(labeled_class_dice(out.labeled_logits, batch.y_l.flatten(0, batch.y_l.dim() - 3)))
        m.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        trainable = [p for p in m.student.parameters() if p.requires_grad]
        average_gradients(trainable)
        torch.nn.utils.clip_grad_norm_(trainable, t.grad_clip_norm)
        m.optimizer.step()
        if m.teacher is not None and pool is None and (ssl or not t.ema_restart_at_ssl):
            update_teacher(m.teacher, m.student, ema_decay(state.iteration - (state.ssl_start_iteration or 0), t.ema_decay))
        state.iteration += 1
        for key, value in out.metrics.items():
            sums[key] = sums.get(key, 0.0) + value
        bar.set_postfix(loss=f"{out.metrics['loss']:.3f}")
        now = time.perf_counter()
        on_step("ssl" if ssl else "supervised", now - last)
        last = now
    values = {key: value / t.iterations_per_epoch for key, value in sums.items()}
    values.update(epoch=epoch + 1, lr=lr, iterations_s=time.perf_counter() - start, **diagnostics, **readiness.metrics(),
                  **(m.student.memory.gate_values() if m.student.memory is not None else {}))
    if pool is not None:
        values.update(summarize_epoch(values, num_classes), unlabeled_weight=weight_u())
    elif ssl:
        values.update(summarize_epoch(values, num_classes), **m.student.dfe.gate_values(), **thresholds.metrics(),
                      unlabeled_weight=weight_u(),
                      **(alignment.metrics() if alignment is not None else {}))
        if t.unready_class_gate:
            values["unready_classes"] = float(readiness.unready()[1:].sum())
        _warn_vanished(values, run, config.class_names)
        if state.bank.epoch >= 0:
            values.update(pcsw_acceptance=state.bank.acceptance, pcsw_fallback=state.bank.fallback)
    state.epoch = epoch + 1
    return values


def ignored_classes(t: TrainingPlan, readiness: ClassReadiness, unreliable: list[bool] | None) -> torch.Tensor | None:
    """bool (K+1,): the classes the unlabeled loss keeps out (unready and/or unreliable); None when neither gate is on.

    Before the first validation the reliability gate trusts no foreground class.
    """
    if not (t.unready_class_gate or t.reliability_gate):
        return None
    ignored = readiness.unready() if t.unready_class_gate else torch.zeros(readiness.num_classes, dtype=torch.bool)
    if t.reliability_gate:
        ignored |= torch.tensor(unreliable) if unreliable is not None else torch.arange(readiness.num_classes) > 0
    return ignored


def _judge_reliability(values: dict[str, float], state: TrainState, run: RunContext, names: dict[int, str],
                       num_classes: int, gate: bool) -> None:
    """Set state.unreliable from this validation's found/away shares (method/reliability.py); log when it changes.

    Without the gate nothing is kept out, but a class whose pseudo labels teach more of it away than
    they find is a warning: on the label-bound benchmark that is what kept weak-to-strong from gaining.
    """
    unreliable = unreliable_classes(values, num_classes).tolist()
    values["unreliable_classes"] = float(sum(unreliable))
    if unreliable != state.unreliable:
        def share(kind: str, k: int) -> str:
            return f"{100 * values[f'{kind}_{k}']:.0f} %" if f"{kind}_{k}" in values else "absent"
        shares = {k: f"found {share('found', k)}, taught away {share('away', k)}" for k in range(1, num_classes)}
        if gate:
            logger.info("reliability gate (%d validation case(s)): %s", len(run.val_ids), "; ".join(
                f"{names.get(k, k)} {'kept out' if unreliable[k] else 'used'} ({shares[k]})" for k in shares))
        elif any(unreliable[k] and f"found_{k}" in values for k in shares):  # absent classes: nothing to warn about
            measured = [k for k in shares if f"found_{k}" in values]
            logger.warning("on the %d validation case(s) the pseudo labels teach more voxels of %s away as background "
                           "than they find (%s); --reliability-gate would keep such classes out of the unlabeled loss",
                           len(run.val_ids), ", ".join(str(names.get(k, k)) for k in measured if unreliable[k]),
                           "; ".join(f"{names.get(k, k)} {shares[k]}" for k in measured))
    state.unreliable = unreliable


def unlabeled_weight(weight: float, ssl_iteration: int, rampup_iterations: int) -> float:
    """w_u = weight·exp(−5(1 − t)²) over the ramp-up (Mean Teacher's sigmoid ramp), then `weight`."""
    if rampup_iterations <= 0 or ssl_iteration >= rampup_iterations:
        return weight
    t = ssl_iteration / rampup_iterations
    return weight * math.exp(-5.0 * (1.0 - t) ** 2)


def _foreground_band(multiple: float, run: RunContext, num_classes: int) -> torch.Tensor | None:
    """Per class the share of a batch's pixels in the foreground band (method/readiness.py), or None when off."""
    if multiple <= 0:
        return None
    if not run.voxel_fractions:
        logger.warning("foreground_band %g: the fingerprint has no labeled class prior to size the band; it stays off "
                       "(re-run sss_plan_and_preprocess)", multiple)
        return None
    shares = plausible_shares(run.voxel_fractions, num_classes, multiple)
    logger.info("foreground band: background pseudo labels are ignored on the top %s of each batch's pixels by p_k",
                ", ".join(f"{100 * float(shares[k]):.2g}% (class {k})" for k in range(1, num_classes)))
    return shares


def _start_teacher(m: SSSModules, state: TrainState, restart: bool) -> None:
    """At the first SSL iteration the EMA teacher restarts as a copy of the student (when `restart`).

    An EMA over the supervised warm-up averages the fast-changing early networks and lags the
    student: on the demo it predicted no confident foreground at all in the first SSL epoch, so the
    unlabeled loss only taught background. The copy starts SSL from the best model there is, and
    the decay ramp min(1 − 1/(t+1), decay) restarts with it.
    """
    if restart:
        m.teacher.load_state_dict(m.student.state_dict())
        logger.info("semi-supervised phase starts at iteration %d: the EMA teacher restarts as a copy of the student",
                    state.iteration)
    state.ssl_start_iteration = state.iteration if restart else 0


def _pseudo_label_pool(config: TrainConfig, run: RunContext, m: SSSModules, readiness: ClassReadiness,
                       state: TrainState) -> tuple[PseudoLabelPool, dict[str, float]]:
    """Offline self-training: the student labels the unlabeled pool once (rank 0, full inference with TTA)."""
    t, folder = config.training, run.folder / POOL_FOLDER
    metrics: dict[str, float] = {}
    if run.dist.is_main:
        ignored = ignored_classes(t, readiness, state.unreliable)
        unready = ignored.numpy() if ignored is not None else None
        _, metrics = label_pool(m.student, run.cache, run.unlabeled_ids, replace(config.inference, tta=True),
                                run.constraints, folder, t.confidence_threshold, t.confidence_mode,
                                state.epoch, unready, readiness.shares.numpy(), run.show_progress)
        logger.info("self-training: the student pseudo-labelled %d unlabeled case(s) in %.0f s (TTA); confident "
                    "pixels per class: %s; cases holding a class: %s", len(run.unlabeled_ids), metrics["pool_s"],
                    ", ".join(f"{config.class_names.get(k, k)} {metrics[f'plc_{k}']:.2e}"
                              for k in range(1, m.student.config.num_classes)),
                    ", ".join(f"{config.class_names.get(k, k)} {metrics[f'pool_cases_{k}']:.0f}"
                              for k in range(1, m.student.config.num_classes)))
    barrier()
    pool = load_pool(folder)
    if pool is None:
        raise SSSError(f"{folder}: the pseudo-labelled pool was not written (see the log of rank 0)")
    return pool, {"pool_s": metrics["pool_s"]} if metrics else {}


def labeled_classes(cache: CaseCache, case_ids: list[str]) -> set[int]:
    """The foreground classes present in these cached labeled cases (from their foreground samples)."""
    classes: set[int] = set()
    for case_id in case_ids:
        classes.update(int(k) for k in np.unique(cache.load(case_id).foreground[:, 0]))
    return classes - {0}


def _ssl_gate_open(state: TrainState, planned: int, budget: BudgetTracker | None, readiness: ClassReadiness,
                   classes: set[int], names: dict[int, str], remaining_share: float, min_remaining: float) -> bool:
    """ssl_start "ready": True once the planned warm-up is over and every labeled class is learned, while at least
    `min_remaining` of the run remains (`remaining_share`, see _remaining_share).

    Until then the run is a supervised run: with a time budget every remaining epoch is planned as a
    supervised one (`BudgetTracker.holding`), so a run that never gets there trains exactly as
    supervised-only training would. Every epoch held after the planned warm-up moves the warm-up's
    end one epoch on (`state.warmup_hold`). Once less than `min_remaining` is left the gate stays shut
    (`state.ssl_too_late`): pseudo labels for the last few epochs only perturb the final model (one
    demo run that opened for its last epoch scored 0.493 against 0.549; not measured over seeds).
    Rank 0 decides for every rank.
    """
    if state.epoch < max(planned, state.warmup_hold):
        return False
    if state.ssl_too_late:
        _hold_warmup(state, budget)
        return False
    if gather_from_ranks(remaining_share)[0] < min_remaining:
        logger.info("semi-supervision will not start: less than %.0f%% of the run remains (ssl_min_remaining); the run "
                    "stays supervised to its end", 100 * min_remaining)
        state.ssl_too_late = True
        _hold_warmup(state, budget)
        return False
    waiting = gather_from_ranks(readiness.waiting_classes(classes))[0]
    if not waiting:
        logger.info("every labeled class is learned on its labeled slices: the semi-supervised phase starts at "
                    "epoch %d (planned warm-up: %d epochs)", state.epoch + 1, planned)
        return True
    if not state.warmup_hold or state.epoch % 10 == 0:
        logger.info("semi-supervision waits (ssl_start ready): %s not yet learned on the labeled slices (running Dice "
                    "below %.2f); training stays supervised", ", ".join(
                        f"{names.get(k, k)} {'not seen' if math.isnan(d) else f'{d:.2f}'}" for k, d in waiting), READY_DICE)
    _hold_warmup(state, budget)
    return False


def _hold_warmup(state: TrainState, budget: BudgetTracker | None) -> None:
    """The gate stays shut this epoch: the warm-up lasts at least one epoch more."""
    state.warmup_hold = state.epoch + 1
    if budget:
        budget.hold_warmup(state.warmup_hold)


def _remaining_share(epoch: int, num_epochs: int, budget: BudgetTracker | None, spent_s: float) -> float:
    """The share of the run still ahead at the start of `epoch`: of the time budget, else of the epochs."""
    if budget:
        return max(0.0, 1.0 - (budget.elapsed_s + spent_s) / budget.budget_s)
    return max(0.0, (num_epochs - epoch) / max(num_epochs, 1))


def _fixed_warmup(t: TrainingPlan) -> int:
    """Warm-up epochs without a time budget: warmup_epochs, or warmup_fraction of num_epochs."""
    if t.warmup_fraction is None:
        return t.warmup_epochs
    return int(round(t.warmup_fraction * t.num_epochs))


def _budget_tracker(config: TrainConfig, state: TrainState) -> BudgetTracker | None:
    """The run's budget tracker: restored from the checkpoint (the derived schedule is kept), or new."""
    minutes = config.training.time_budget_min
    if minutes is None:
        return None
    if state.budget is not None:
        tracker = BudgetTracker.from_state_dict(state.budget, config.device)
        logger.info("time budget %.1f min: continuing the derived schedule of %d epochs (%.1f min spent)",
                    minutes, tracker.num_epochs, tracker.elapsed_s / 60)
        return tracker
    logger.info("time budget %.1f min: the number of epochs is derived from the first iterations' step time", minutes)
    fraction = config.training.warmup_fraction
    gated = config.training.ssl_start == "ready" and not config.ablation.supervised_only
    return BudgetTracker(minutes * 60, config.device, num_epochs=config.training.num_epochs, warmup_fraction=fraction,
                         warmup_epochs=None if fraction is None else 0 if fraction == 0 else 10**6,
                         holding=gated)  # planned as a supervised run until semi-supervision starts


def _log_duration(timer: BudgetTracker, schedule: Schedule, num_epochs: int, epoch: int, tta: bool, phase: str) -> None:
    """The run's expected remaining time, from the step just measured (runs without a time budget)."""
    costs = timer.costs(tta)
    left = remaining_s(num_epochs, epoch, schedule, costs)
    guess = " (SSL step guessed)" if schedule.ssl and "ssl_step_s" not in timer.measured else ""
    validation = "" if "validation_s" in timer.measured else ", validation not yet measured"
    logger.info("estimated time left: about %s on this machine (%d epochs x %d iterations; %s step %.3f s%s%s)",
                format_duration(left), num_epochs, schedule.iterations_per_epoch, phase,
                getattr(costs, f"{phase}_step_s"), guess, validation)


def _agree(budget: BudgetTracker) -> None:
    """Under torchrun every rank must run the same epochs: rank 0's plan is everyone's (a collective)."""
    budget.num_epochs = int(gather_from_ranks(budget.num_epochs)[0])


def _no_prompts(prompts):
    return replace(prompts, valid=torch.zeros_like(prompts.valid))


def mixed_precision(device: str):
    """bf16 autocast on CUDA (no loss scaling needed); full precision on the CPU."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _log_prompt_quality(values: dict[str, float], run: RunContext, names: dict[int, str]) -> None:
    parts = [f"{names.get(k, k)} recall {values[f'prompt_recall_{k}']:.2f} precision {values[f'prompt_precision_{k}']:.2f} "
             f"box IoU {values[f'prompt_box_iou_{k}']:.2f}"
             for k in sorted({int(key.rsplit('_', 1)[1]) for key in values})]
    logger.info("PCSW prompts on the %d labeled validation case(s): %s", len(run.val_ids), "; ".join(parts))


def _warn_vanished(values: dict[str, float], run: RunContext, names: dict[int, str]) -> None:
    """Warn when a class vanishes from the pseudo labels, and say when it is back (once per change)."""
    gone = vanished_classes(values, run.priors)
    for k, share, prior in gone:
        if k not in run.vanished:
            logger.warning("class %s (%d) has vanished from the confident pseudo labels: %.2g of weak-view pixels "
                           "against %.2g of labeled voxels; the unlabeled loss now teaches the student to miss it "
                           "(said once; the per-class shares are logged every epoch)", names.get(k, k), k, share, prior)
    for k in run.vanished - {k for k, _, _ in gone}:
        logger.info("class %s (%d) is back in the confident pseudo labels", names.get(k, k), k)
    run.vanished = {k for k, _, _ in gone}


def _log_epoch(values: dict[str, float], run: RunContext, names: dict[int, str]) -> None:
    shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items()
                      if k not in ("epoch", "epoch_time_s") and not PER_CLASS_PSEUDO_LABEL.match(k) and not math.isnan(v))
    logger.info("epoch %d (%.1f s): %s", int(values["epoch"]), values["epoch_time_s"], shown)
    if "pl_0" in values:
        parts = []
        for k in sorted(v for v in names if v > 0):
            prior = run.priors.get(k)
            parts.append(f"{names[k]} {values.get(f'pl_{k}', math.nan):.2e}/{values.get(f'plc_{k}', math.nan):.2e}"
                         f" mask {values.get(f'mask_ratio_{k}', math.nan):.2f}"
                         + (f" tau {values[f'tau_{k}']:.2f}" if f"tau_{k}" in values else "")
                         + (f" align x{values[f'align_{k}']:.3g}" if f"align_{k}" in values else "")
                         + (f" labeled Dice {values[f'ready_dice_{k}']:.2f}" if f"ready_dice_{k}" in values else "")
                         + (f" (labeled {prior.voxel_fraction:.2e})" if prior is not None else ""))
        logger.info("pseudo labels per class, share of weak-view pixels all/confident: %s", "; ".join(parts))


def checkpoint_state(config: TrainConfig, m: SSSModules, state: TrainState) -> dict:
    """Everything needed to continue: modules, optimizer, history, bank, RNG, epoch."""
    return {"config": to_dict(config), "epoch": state.epoch, "iteration": state.iteration,
            "student": m.student.state_dict(), "teacher": m.teacher.state_dict() if m.teacher is not None else {},
            "optimizer": m.optimizer.state_dict(), "history": state.history,
            "best": {"dice": state.best_dice, "epoch": state.best_epoch, "bank": state.best_bank_file},
            "bank": state.bank_file or state.bank.state_dict(),
            "budget": state.budget, "thresholds": state.thresholds, "ssl_start_iteration": state.ssl_start_iteration,
            "alignment": state.alignment, "readiness": state.readiness, "warmup_hold": state.warmup_hold,
            "ssl_too_late": state.ssl_too_late,
            "ssl_start_epoch": state.ssl_start_epoch, "unreliable": state.unreliable,
            "rng": {"torch": torch.get_rng_state()}}


def _save_epoch(config: TrainConfig, run: RunContext, m: SSSModules, state: TrainState, values: dict[str, float]) -> None:
    dice = values.get("dice_mean", math.nan)
    improved = not math.isnan(dice) and dice > state.best_dice
    if state.bank.epoch >= 0 and state.bank_file is None:
        state.bank_file = save_bank(state.bank, run.folder)
    if improved:
        state.best_dice, state.best_epoch, state.best_bank_file = dice, state.epoch, state.bank_file
    ckpt = checkpoint_state(config, m, state)
    save_checkpoint(ckpt, run.folder / LATEST)
    if improved:
        save_checkpoint(ckpt, run.folder / BEST)
        logger.info("new best mean validation Dice %.4f at epoch %d", dice, state.epoch)
    prune_banks(run.folder, [state.bank_file, state.best_bank_file])
    class_names = {k: name for k, name in config.class_names.items() if k > 0}
    progress.plot_progress(state.history, class_names, run.folder / "progress.png", run.priors)
    write_json_atomic(state.history, run.folder / progress.HISTORY_FILE)  # NaN as null


def _resume(path: Path, m: SSSModules) -> TrainState:
    ckpt = load_checkpoint(path)
    bank, bank_file = load_bank(ckpt["bank"], path.parent)
    m.student.load_trained_state(ckpt["student"], resuming=True)
    if m.teacher is not None:
        m.teacher.load_trained_state(ckpt["teacher"], resuming=True)
    m.optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    state = TrainState(epoch=ckpt["epoch"], iteration=ckpt["iteration"], history=ckpt["history"],
                       best_dice=ckpt["best"]["dice"], best_epoch=ckpt["best"]["epoch"], bank=bank,
                       budget=ckpt.get("budget"), thresholds=ckpt.get("thresholds"),
                       ssl_start_iteration=ckpt.get("ssl_start_iteration"), alignment=ckpt.get("alignment"),
                       readiness=ckpt.get("readiness"), warmup_hold=int(ckpt.get("warmup_hold", 0)),
                       ssl_too_late=bool(ckpt.get("ssl_too_late", False)),
                       ssl_start_epoch=ckpt.get("ssl_start_epoch"), unreliable=ckpt.get("unreliable"), bank_file=bank_file,
                       best_bank_file=ckpt["best"].get("bank"))
    logger.info("continuing from %s: epoch %d done, iteration %d", path, state.epoch, state.iteration)
    return state


def _finish(config: TrainConfig, run: RunContext, m: SSSModules, state: TrainState, duration_s: float,
            budget: BudgetTracker | None) -> dict:
    save_checkpoint(checkpoint_state(config, m, state), run.folder / FINAL)
    validation_start = time.monotonic()
    validation = final_validation(config, run, m)
    validation_s = time.monotonic() - validation_start
    duration_s += validation_s
    time_budget = None
    if budget is not None:
        used_s = budget.elapsed_s + duration_s
        time_budget = {"budget_min": budget.budget_s / 60, "used_min": round(used_s / 60, 2),
                       "final_validation_s": round(validation_s, 1), "plans": budget.history}
        logger.info("time budget %.1f min: used %.1f min for %d epochs (%d iterations), final validation included",
                    budget.budget_s / 60, used_s / 60, state.epoch, state.iteration)
    summary = {
        "dataset": config.dataset, "configuration": config.configuration, "fold": config.fold,
        "run": config.ablation.run_name(), "sam2_variant": config.plan.sam2_variant, "encoder": config.plan.encoder,
        "sam2_pretrained": m.student.pretrained_encoder,
        "sam2_note": "pretrained SAM-2 weights" if m.student.pretrained_encoder else
        "RANDOMLY INITIALISED SAM-2 encoder (no checkpoint given): not pretrained",
        "epochs": state.epoch, "iterations": state.iteration, "duration_s": round(duration_s, 1),
        "time_budget": time_budget,
        "semi_supervised": _ssl_summary(config, state),
        "pcsw_bank_refreshes": _refresh_summary(state.history),
        "device": config.device, "world_size": run.dist.world_size,
        "best_epoch": state.best_epoch, "best_proxy_dice": None if math.isinf(state.best_dice) else state.best_dice,
        "final_validation": validation,
        "last_epoch": {k: v[-1] for k, v in state.history.items() if v and not math.isnan(v[-1])},
    }
    write_json_atomic(summary, run.folder / "training_summary.json")
    logger.info("training finished; summary in %s", run.folder / "training_summary.json")
    return summary


def _refresh_summary(history: dict[str, list[float]]) -> dict[str, float]:
    """How many PCSW bank refreshes the run made and the seconds they took (prompt quality included)."""
    seconds = [s for s in history.get("bank_refresh_s", []) if not math.isnan(s)]
    return {"count": len(seconds), "seconds": round(sum(seconds), 2)}


def _ssl_summary(config: TrainConfig, state: TrainState) -> dict | None:
    """When the semi-supervised phase started (None for supervised-only runs); says so in the log when it never did."""
    if config.ablation.supervised_only:
        return None
    if state.ssl_start_epoch is None and state.ssl_start_iteration is None:
        if state.ssl_too_late:
            reason = (f"less than {config.training.ssl_min_remaining:.0%} of the run remained before every labeled class "
                      "was learned (ssl_min_remaining: the run stayed supervised to its end)")
        elif config.training.ssl_start == "ready" and state.warmup_hold:
            reason = ("a labeled class was still not learned on its labeled slices when the run ended (ssl_start ready: "
                      "the run spent every iteration on the labeled data, as supervised-only training would)")
        else:
            reason = "the run ended within the warm-up"
        logger.warning("the semi-supervised phase never started: %s; a longer run (or pretrained weights) lets the "
                       "unlabeled scans be used", reason)
    return {"unlabeled_training": config.training.unlabeled_training, "ssl_start": config.training.ssl_start,
            "warmup_held_to_epoch": state.warmup_hold,
            "started_at_epoch": None if state.ssl_start_epoch is None else state.ssl_start_epoch + 1,
            "too_late": state.ssl_too_late}


def final_validation(config: TrainConfig, run: RunContext, m: SSSModules) -> dict | None:
    """Full two-pass inference with TTA on the validation cases, exported and scored (None without cases)."""
    if not run.val_ids:
        return None
    m.student.eval()
    summary = export_and_score([m.student], run.cache, run.val_ids, run.reference_folder, config.plans,
                               config.inference, run.constraints, run.folder / "validation", False,
                               config.save_validation_probabilities)
    fused = "propagated through the slice memory (pass 2)" if config.clip_length else "fused (pass 2)"
    for name, scores in ((fused, summary), ("coarse (pass 1)", summary["coarse"])):
        logger.info("final validation (original geometry, TTA %s), %s: mean Dice %s per class %s",
                    "on" if config.validation_tta else "off", name, _fmt(scores["mean"]["dice"]),
                    {k: _fmt(v["dice"]) for k, v in scores["mean_per_class"].items()})
    return {"mean": summary["mean"], "mean_per_class": summary["mean_per_class"], "coarse": summary["coarse"]}


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
