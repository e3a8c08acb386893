"""Per-case work of the predictor that runs in worker processes (torch-free, so workers start fast)."""

from __future__ import annotations

from planners.plans import Plans
from preprocessing.case import CachedCase, preprocess_case
from sss_auto.dataset.integrity import read_case
from sss_auto.dataset.raw import Case
from sss_auto.errors import SSSError
from sss_auto.inference.export import export_prediction


def read_and_preprocess(args: tuple[Case, Plans, str]) -> CachedCase:
    """Read, check and preprocess one input case exactly as in training (runs in a worker)."""
    case, plans, configuration = args
    images, _, geometry = read_case(case, set(plans.labels.values()))
    if images.shape[0] != len(plans.channel_names):
        raise SSSError(f"{case.images[0]}: {images.shape[0]} channel(s), the model takes {len(plans.channel_names)}")
    return preprocess_case(case.case_id, images, None, geometry, plans, configuration)


def export_one(args: tuple) -> None:
    """Undo preprocessing and write one prediction (runs in a worker)."""
    probabilities, properties, plans, path, save_probabilities, postprocessing, nnunet_layout = args
    export_prediction(probabilities, properties, plans, path, save_probabilities, postprocessing, nnunet_layout)
