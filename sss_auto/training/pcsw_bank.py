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

logger = logging.getLogger(__name__)


def refresh_bank(teacher: SSSNet, cache: CaseCache, case_ids: list[str], settings: InferenceSettings,
                 constraints: dict[int, ClassConstraint], epoch: int, progress: bool = True) -> PromptBank:
    """Coarse pass (no TTA) over each unlabeled volume → PCSW per class → the kept objects."""
    objects, accepted, fallback, pairs = {}, 0, 0, 0
    for case_id in tqdm(case_ids, desc=f"PCSW bank (epoch {epoch})", unit="case", disable=None if progress else True):
        volume = cache.load(case_id)
        probabilities = mean_probabilities([teacher], np.asarray(volume.data), settings, tta=False)
        label_volume, results = pcsw_label_volume(probabilities, volume.properties.spacing_after_resampling_mm,
                                                  settings.pcsw_tau, constraints)
        objects[case_id] = StoredObjects.from_volume(label_volume)
        pairs += len(results)
        accepted += sum(r.status == "window" for r in results)
        fallback += sum(r.status == "fallback" for r in results)
    bank = PromptBank(objects, epoch, accepted / max(pairs, 1), fallback / max(pairs, 1))
    logger.info("PCSW bank at epoch %d: %d case(s), continuous window accepted for %.0f%% of (case, class) pairs, "
                "fallback %.0f%%", epoch, len(objects), 100 * bank.acceptance, 100 * bank.fallback)
    return bank
