"""The training steps of a configuration, chosen once per run: slices (`2d`) or clips of slices (`2d_memory`).

The loop calls `supervised` or `semi_supervised` and never asks which configuration it trains. The
strong views are drawn here from the loop's generator, so the draws per iteration are the same as
when the loop drew them itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from sss_auto.data.batch import ClipBatch, TrainBatch
from sss_auto.data.strong import jitter, strong_view
from sss_auto.method.clip_steps import clip_sss_step, clip_supervised_step
from sss_auto.method.steps import SSLSettings, StepOutput, sss_step, supervised_step, swap_diagnostic
from sss_auto.networks.model import SSSNet


@dataclass(frozen=True)
class SliceSteps:
    """`2d`: batches of single slices, `strong_views` strong views per unlabeled slice, DFE's swap diagnostic."""

    strong_views: int
    photometric: str = "full"
    cutmix_source: str = "unlabeled"  # "labeled": boxes of labeled slices with their labels; "bidirectional": the
    # second view the other way round, a BCP box of the strong view in a labeled slice (data/strong.py)
    swap_diagnostic = True  # DFE's weak/strong leak check has views to swap here

    def supervised(self, batch: TrainBatch, student: SSSNet) -> StepOutput:
        return supervised_step(batch, student)

    def semi_supervised(self, batch: TrainBatch, student: SSSNet, teacher: SSSNet, settings: SSLSettings,
                        generator: torch.Generator, diagnose: bool = False) -> tuple[StepOutput, dict[str, float]]:
        """One SSS step; with `diagnose`, also the swap diagnostic of the same views, before the step."""
        labeled = (batch.x_l, batch.y_l) if self.cutmix_source != "unlabeled" else None
        views = [strong_view(batch.x_w, generator, self.photometric, labeled,
                             labeled_context=self.cutmix_source == "bidirectional" and k == 1)
                 for k in range(self.strong_views)]
        diagnostics = swap_diagnostic(batch, student, teacher, views, settings) if diagnose else {}
        return sss_step(batch, student, teacher, views, settings, generator), diagnostics


@dataclass(frozen=True)
class ClipSteps:
    """`2d_memory`: clips of consecutive slices through the slice memory; one strong clip (DFE, when planned, as
    strong_pair inside `clip_sss_step`), no swap diagnostic (strong_pair passes no weak feature to swap)."""

    photometric: str = "full"
    swap_diagnostic = False

    def supervised(self, batch: ClipBatch, student: SSSNet) -> StepOutput:
        return clip_supervised_step(batch, student)

    def semi_supervised(self, batch: ClipBatch, student: SSSNet, teacher: SSSNet, settings: SSLSettings,
                        generator: torch.Generator, diagnose: bool = False) -> tuple[StepOutput, dict[str, float]]:
        """One SSS step on clips (the strong clip jittered per slice); `diagnose` is ignored (swap_diagnostic False)."""
        batch = replace(batch, x_s=jitter(batch.x_w, generator, self.photometric))
        return clip_sss_step(batch, student, teacher, settings, generator), {}


def step_kind(clip_length: int, strong_views: int, photometric: str,
              cutmix_source: str = "unlabeled") -> SliceSteps | ClipSteps:
    """The steps a configuration trains with: clips when it has a clip length, slices otherwise."""
    return ClipSteps(photometric) if clip_length else SliceSteps(strong_views, photometric, cutmix_source)
