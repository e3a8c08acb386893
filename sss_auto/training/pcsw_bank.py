"""The PCSW bank from the teacher's whole-volume coarse masks of every unlabeled case, and its prompts' quality.

The same teacher pass and PCSW run on the fold's labeled validation volumes at every refresh,
where the labels say how good the prompts are (sss_auto/prompting/quality.py).
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from preprocessing.case import CachedCase
from sss_auto.data.cache import CaseCache
from sss_auto.inference.settings import InferenceSettings
from sss_auto.inference.two_pass import mean_probabilities
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.bank import PromptBank, StoredObjects
from sss_auto.prompting.pcsw import ClassConstraint, PCSWResult, pcsw_label_volume
from sss_auto.prompting.quality import add_counts, prompt_quality_counts, rates
from sss_auto.training.distributed import gather_from_ranks

logger = logging.getLogger(__name__)


def pcsw_of_volume(teacher: SSSNet, volume: CachedCase, settings: InferenceSettings,
                   constraints: dict[int, ClassConstraint]) -> tuple[np.ndarray, list[PCSWResult]]:
    """The teacher's coarse pass (no TTA) over one cached volume, then PCSW per class."""
    probabilities = mean_probabilities([teacher], np.asarray(volume.data), settings, tta=False)
    return pcsw_label_volume(probabilities, volume.properties.spacing_after_resampling_mm, settings.pcsw_tau, constraints)


def prompt_quality(teacher: SSSNet, cache: CaseCache, case_ids: list[str], settings: InferenceSettings,
                   constraints: dict[int, ClassConstraint]) -> dict[str, float]:
    """PCSW's prompt recall, precision and box IoU per class on labeled volumes (see prompting/quality.py)."""
    total: dict[int, dict[str, float]] = {}
    for case_id in case_ids:
        volume = cache.load(case_id)
        add_counts(total, prompt_quality_counts(pcsw_of_volume(teacher, volume, settings, constraints)[1],
                                                np.asarray(volume.seg)))
    return rates(total)


def refresh_bank(teacher: SSSNet, cache: CaseCache, case_ids: list[str], settings: InferenceSettings,
                 constraints: dict[int, ClassConstraint], epoch: int, progress: bool = True,
                 rank: int = 0, world_size: int = 1, previous: PromptBank | None = None,
                 fraction: float = 1.0) -> PromptBank:
    """Coarse pass (no TTA) over the unlabeled volumes due → PCSW per class → the kept objects.

    With `fraction` < 1 (a rolling refresh) only the cases without objects and the oldest entries of
    `previous`, ceil(fraction × N) in all, are renewed; the others keep theirs. Under torchrun each
    rank processes every world_size-th due case and the parts are gathered, so every rank ends with
    the same whole bank (the teachers are identical).
    """
    previous = previous or PromptBank()
    due = previous.due(case_ids, fraction)
    logger.info("PCSW bank refresh at epoch %d starts: %d of %d unlabeled case(s)%s", epoch, len(due), len(case_ids),
                "" if len(due) == len(case_ids) else " (rolling refresh: those without objects, then the oldest)")
    objects, accepted, fallback, implausible, pairs = {}, 0, 0, 0, 0
    mine = due[rank::world_size]
    for case_id in tqdm(mine, desc=f"PCSW bank (epoch {epoch})", unit="case", disable=None if progress else True):
        label_volume, results = pcsw_of_volume(teacher, cache.load(case_id), settings, constraints)
        objects[case_id] = StoredObjects.from_volume(label_volume)
        pairs += len(results)
        accepted += sum(r.status == "window" for r in results)
        fallback += sum(r.status == "fallback" for r in results)
        implausible += sum(r.status == "none" and r.dropped > 0 for r in results)
    parts = gather_from_ranks((objects, accepted, fallback, implausible, pairs))
    renewed = {case_id: found for part in parts for case_id, found in part[0].items()}
    objects = {case_id: renewed[case_id] if case_id in renewed else previous.objects[case_id]
               for case_id in case_ids if case_id in renewed or case_id in previous.objects}  # the same order on every rank
    built = {case_id: epoch if case_id in renewed else previous.built.get(case_id, previous.epoch) for case_id in objects}
    accepted, fallback, implausible, pairs = (sum(part[i] for part in parts) for i in (1, 2, 3, 4))
    bank = PromptBank(objects, epoch, accepted / max(pairs, 1), fallback / max(pairs, 1), built)
    logger.info("PCSW bank at epoch %d: %d case(s) (%d renewed), continuous window accepted for %.0f%% of the renewed "
                "(case, class) pairs, fallback %.0f%%, no prompt %.0f%% (every component physically implausible: %.0f%%; "
                "the rest: no foreground predicted)", epoch, len(objects), len(renewed), 100 * bank.acceptance,
                100 * bank.fallback, 100 * (pairs - accepted - fallback) / max(pairs, 1), 100 * implausible / max(pairs, 1))
    if pairs and accepted + fallback + implausible == 0:
        logger.warning("the teacher predicts no foreground in any unlabeled case at epoch %d: pseudo labels will be "
                       "background only, which teaches the student to miss lesions; a longer supervised warm-up "
                       "(--warmup-epochs) usually helps", epoch)
    return bank
