"""Refresh the PCSW bank from the teacher's whole-volume coarse masks of every unlabeled case."""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from sss_auto.data.cache import CaseCache
from sss_auto.inference.two_pass import InferenceSettings, mean_probabilities
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.bank import PromptBank, StoredObjects
from sss_auto.prompting.pcsw import ClassConstraint, pcsw_label_volume
from sss_auto.training.distributed import gather_from_ranks

logger = logging.getLogger(__name__)


def refresh_bank(teacher: SSSNet, cache: CaseCache, case_ids: list[str], settings: InferenceSettings,
                 constraints: dict[int, ClassConstraint], epoch: int, progress: bool = True,
                 rank: int = 0, world_size: int = 1) -> PromptBank:
    """Coarse pass (no TTA) over each unlabeled volume → PCSW per class → the kept objects.

    Under torchrun each rank processes every world_size-th case and the parts are gathered, so every
    rank ends with the same whole bank (the teachers are identical).
    """
    objects, accepted, fallback, implausible, pairs = {}, 0, 0, 0, 0
    mine = case_ids[rank::world_size]
    for case_id in tqdm(mine, desc=f"PCSW bank (epoch {epoch})", unit="case", disable=None if progress else True):
        volume = cache.load(case_id)
        probabilities = mean_probabilities([teacher], np.asarray(volume.data), settings, tta=False)
        label_volume, results = pcsw_label_volume(probabilities, volume.properties.spacing_after_resampling_mm,
                                                  settings.pcsw_tau, constraints)
        objects[case_id] = StoredObjects.from_volume(label_volume)
        pairs += len(results)
        accepted += sum(r.status == "window" for r in results)
        fallback += sum(r.status == "fallback" for r in results)
        implausible += sum(r.status == "none" and r.dropped > 0 for r in results)
    parts = gather_from_ranks((objects, accepted, fallback, implausible, pairs))
    objects = {case_id: found for part in parts for case_id, found in part[0].items()}
    objects = {case_id: objects[case_id] for case_id in case_ids}  # the same order on every rank
    accepted, fallback, implausible, pairs = (sum(part[i] for part in parts) for i in (1, 2, 3, 4))
    bank = PromptBank(objects, epoch, accepted / max(pairs, 1), fallback / max(pairs, 1))
    logger.info("PCSW bank at epoch %d: %d case(s), continuous window accepted for %.0f%% of (case, class) pairs, "
                "fallback %.0f%%, no prompt %.0f%% (every component physically implausible: %.0f%%; the rest: no "
                "foreground predicted)", epoch, len(objects), 100 * bank.acceptance, 100 * bank.fallback,
                100 * (pairs - accepted - fallback) / max(pairs, 1), 100 * implausible / max(pairs, 1))
    if pairs and accepted + fallback + implausible == 0:
        logger.warning("the teacher predicts no foreground in any unlabeled case at epoch %d: pseudo labels will be "
                       "background only, which teaches the student to miss lesions; a longer supervised warm-up "
                       "(--warmup-epochs) usually helps", epoch)
    return bank
