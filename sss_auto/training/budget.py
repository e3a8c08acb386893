"""`--time-budget`: how many epochs fit a wall-clock budget, from step, validation and refresh times measured in the run.

The trainer measures the time per iteration over the first iterations of the supervised phase
and again in the first semi-supervised epoch (the SSS step is dearer), the per-epoch validation
and each PCSW bank refresh, and plans the number of epochs so that training, validation, bank
refreshes and the final validation end within the budget; the poly learning rate is scheduled over
that total. Before the first SSL epoch the SSL step is guessed from the supervised one
(`SSL_STEP_GUESS`), then measured. After every epoch the plan is checked against the epochs'
measured cost and corrected when it would miss the budget by more than an epoch. The derived
plan is saved with the checkpoint, so `--c` keeps it.
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

PROBE_SKIP = 2  # the first iterations of a phase include warm-up costs (threads, workers, allocator)
PROBE_ITERATIONS = 8  # iterations timed per phase
SSL_STEP_GUESS = {"cpu": 3.0, "cuda": 1.3}  # SSL step / supervised step before the SSL step is measured
FINAL_VALIDATION_MARGIN = 1.25  # the final validation also exports and scores; with TTA it runs 4 mirrored passes
HELD = 10**6  # a held warm-up's end, for planning: not in sight
RECENT_EPOCHS = 3  # a phase's step time: the mean over its last epochs


@dataclass(frozen=True)
class Costs:
    """Measured (or guessed) seconds of the pieces of an epoch.

    Attributes:
        supervised_step_s / ssl_step_s: one iteration, data loading included.
        validation_s: the per-epoch validation proxy.
        refresh_s: one PCSW bank refresh (0 when the run has no bank).
        final_validation_s: the validation after the last epoch.
    """

    supervised_step_s: float
    ssl_step_s: float
    validation_s: float = 0.0
    refresh_s: float = 0.0
    final_validation_s: float = 0.0


@dataclass(frozen=True)
class Schedule:
    """The phases of a run: warm-up epochs of supervised steps, then SSL epochs (none when supervised only)."""

    iterations_per_epoch: int
    warmup_epochs: int
    ssl: bool
    refresh_every: int | None  # bank refresh every N SSL epochs, from the first; None without a bank

    def epoch_cost(self, epoch: int, costs: Costs) -> float:
        """Seconds of epoch `epoch` (0-based): its iterations, its validation and, at refresh epochs, the refresh."""
        in_ssl = self.ssl and epoch >= self.warmup_epochs
        step = costs.ssl_step_s if in_ssl else costs.supervised_step_s
        refresh = in_ssl and self.refresh_every is not None and (epoch - self.warmup_epochs) % self.refresh_every == 0
        return self.iterations_per_epoch * step + costs.validation_s + (costs.refresh_s if refresh else 0.0)


def epochs_within(budget_s: float, elapsed_s: float, done_epochs: int, schedule: Schedule, costs: Costs) -> int:
    """The total number of epochs whose remaining ones fit `budget_s` after `elapsed_s` (at least one more)."""
    spent, epochs = elapsed_s + costs.final_validation_s, done_epochs
    while True:
        cost = schedule.epoch_cost(epochs, costs)
        if spent + cost > budget_s and epochs > done_epochs:
            return epochs
        spent += cost
        epochs += 1
        if epochs > 10**6:
            raise ValueError("time budget: epochs cost nothing; cannot plan")


def remaining_s(num_epochs: int, done_epochs: int, schedule: Schedule, costs: Costs) -> float:
    """Seconds the epochs after `done_epochs` and the final validation will take at `costs`."""
    return sum(schedule.epoch_cost(e, costs) for e in range(done_epochs, num_epochs)) + costs.final_validation_s


def format_duration(seconds: float) -> str:
    """'3 h 10 min', '12 min' or '40 s'."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


@dataclass
class BudgetTracker:
    """Measures a run's costs and keeps its epoch count within the budget (state saved in checkpoints)."""

    budget_s: float
    device: str
    num_epochs: int = 0
    elapsed_s: float = 0.0  # training time spent before this process (resumed runs)
    warmup_fraction: float | None = None  # set: the warm-up is this share of the budget, planned with the epochs
    warmup_epochs: int | None = None  # the planned warm-up (warmup_fraction runs); fixed once SSL has started
    warmup_hold: int = 0  # the warm-up lasts at least this many epochs (held until every class is learned)
    holding: bool = False  # SSL has not started (ssl_start "ready"): the remaining epochs are planned as supervised
    measured: dict[str, float] = field(default_factory=dict)  # supervised_step_s, ssl_step_s, validation_s, refresh_s
    history: list[str] = field(default_factory=list)
    _steps: dict[str, list[float]] = field(default_factory=dict)
    _epochs: dict[str, list[float]] = field(default_factory=dict)

    def record_step(self, phase: str, seconds: float) -> bool:
        """Time one iteration of `phase` ("supervised" or "ssl"); True when this completes the phase's probe."""
        key = f"{phase}_step_s"
        if key in self.measured:
            return False
        times = self._steps.setdefault(phase, [])
        times.append(seconds)
        if len(times) < PROBE_SKIP + PROBE_ITERATIONS:
            return False
        self.measured[key] = statistics.median(times[PROBE_SKIP:])
        return True

    def record(self, **seconds: float) -> None:
        """Measured validation_s / refresh_s (the latest value counts)."""
        self.measured.update(seconds)

    def record_epoch(self, phase: str, iterations_s: float, iterations: int) -> None:
        """The iterations of a whole epoch of `phase`: from then on its step time is the mean over its last
        RECENT_EPOCHS epochs (a machine that got slower or faster is followed within a few epochs)."""
        times = self._epochs.setdefault(phase, [])
        times.append(iterations_s / iterations)
        self.measured[f"{phase}_step_s"] = statistics.fmean(times[-RECENT_EPOCHS:])

    def costs(self, tta: bool) -> Costs:
        """The costs known so far; the SSL step is guessed from the supervised one until it is measured."""
        supervised = self.measured.get("supervised_step_s", self.measured.get("ssl_step_s", 0.0))
        ssl = self.measured.get("ssl_step_s", supervised * SSL_STEP_GUESS["cuda" if self.device.startswith("cuda") else "cpu"])
        validation = self.measured.get("validation_s", 0.0)
        final = validation * (4 if tta else 1) * FINAL_VALIDATION_MARGIN
        return Costs(supervised, ssl, validation, self.measured.get("refresh_s", 0.0), final)

    def schedule(self, schedule: Schedule) -> Schedule:
        """`schedule` with the planned warm-up of a warmup_fraction run, extended to a held warm-up.

        While the SSL start gate holds, every remaining epoch counts as supervised (the run may stay
        supervised to the end); `release_warmup` plans the rest as SSL once the gate opens.
        """
        warmup = max(schedule.warmup_epochs if self.warmup_epochs is None else self.warmup_epochs, self.warmup_hold)
        return Schedule(schedule.iterations_per_epoch, HELD if self.holding else warmup, schedule.ssl,
                        schedule.refresh_every)

    def hold_warmup(self, epochs: int) -> None:
        """The SSL start gate is still closed after `epochs` epochs: the warm-up lasts at least that long, the rest
        is planned as supervised until `release_warmup`."""
        self.warmup_hold = max(self.warmup_hold, epochs)
        self.holding = True

    def release_warmup(self) -> None:
        """The gate opened: the epochs from the held warm-up's end on are planned as SSL epochs."""
        self.holding = False

    def plan(self, spent_s: float, done_epochs: int, schedule: Schedule, tta: bool, why: str) -> int:
        """Set num_epochs (and, before SSL starts, the warm-up of a warmup_fraction run) from the costs known now."""
        costs = self.costs(tta)
        if self.warmup_fraction is not None and schedule.ssl and done_epochs <= (self.warmup_epochs or 0):
            supervised_epoch = schedule.iterations_per_epoch * costs.supervised_step_s + costs.validation_s
            share = self.warmup_fraction * (self.budget_s - costs.final_validation_s)
            self.warmup_epochs = max(done_epochs, int(share // max(supervised_epoch, 1e-9)))
        schedule = self.schedule(schedule)
        epochs = epochs_within(self.budget_s, self.elapsed_s + spent_s, done_epochs, schedule, costs)
        if epochs != self.num_epochs:
            if schedule.ssl and epochs <= schedule.warmup_epochs and not self.warmup_hold and not self.holding:
                logger.warning("time budget %.1f min: the %d supervised warm-up epochs alone do not fit; the run will "
                               "stop before pseudo labels are used (shorten --warmup-epochs or give more time)",
                               self.budget_s / 60, schedule.warmup_epochs)
            ssl = (f", {costs.ssl_step_s:.3f} s SSL{'' if 'ssl_step_s' in self.measured else ' (guessed)'}"
                   if schedule.ssl else "")
            refresh = f", bank refresh {costs.refresh_s:.1f} s" if schedule.refresh_every is not None else ""
            warmup = "" if not schedule.ssl else (" (supervised while the SSL start gate holds)" if self.holding
                                                  else f" ({schedule.warmup_epochs} supervised warm-up)")
            line = (f"time budget {self.budget_s / 60:.1f} min ({why}): {epochs} epochs{warmup} x "
                    f"{schedule.iterations_per_epoch} iterations; step {costs.supervised_step_s:.3f} s supervised{ssl}, "
                    f"validation {costs.validation_s:.1f} s per epoch{refresh}, final validation ~{costs.final_validation_s:.0f} s")
            logger.info("%s", line)
            self.history.append(line)
            self.num_epochs = epochs
        return self.num_epochs

    def check(self, spent_s: float, done_epochs: int, schedule: Schedule, tta: bool) -> int:
        """After an epoch: re-plan from the recent epochs' cost when the plan misses the budget by more than an
        epoch: late (fewer epochs), or early (more epochs, also after what was planned as the last one, e.g.
        when the first epochs were slowed by another process)."""
        schedule = self.schedule(schedule)
        costs = self.costs(tta)
        projected = self.elapsed_s + spent_s + remaining_s(max(self.num_epochs, done_epochs), done_epochs, schedule, costs)
        one_epoch = schedule.epoch_cost(done_epochs, costs)
        late, early = projected - self.budget_s > one_epoch, self.budget_s - projected > one_epoch
        if math.isclose(one_epoch, 0.0) or not (early or (late and done_epochs < self.num_epochs)):
            return self.num_epochs
        return self.plan(spent_s, done_epochs, schedule, tta, f"after epoch {done_epochs}, projected {projected / 60:.1f} min")

    def state_dict(self, spent_s: float) -> dict:
        return {"budget_s": self.budget_s, "num_epochs": self.num_epochs, "elapsed_s": self.elapsed_s + spent_s,
                "warmup_fraction": self.warmup_fraction, "warmup_epochs": self.warmup_epochs,
                "warmup_hold": self.warmup_hold, "holding": self.holding, "measured": dict(self.measured), "history": list(self.history)}

    @classmethod
    def from_state_dict(cls, state: dict, device: str) -> BudgetTracker:
        return cls(float(state["budget_s"]), device, num_epochs=int(state["num_epochs"]), elapsed_s=float(state["elapsed_s"]),
                   warmup_fraction=state.get("warmup_fraction"), warmup_epochs=state.get("warmup_epochs"),
                   warmup_hold=int(state.get("warmup_hold", 0)), holding=bool(state.get("holding", False)), measured={k: float(v) for k, v in state["measured"].items()}, history=list(state["history"]))
