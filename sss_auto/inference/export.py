"""Write a prediction back in the input's original geometry (and optionally its probabilities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from planners.plans import Plans
from preprocessing.case import CaseProperties, restore_probabilities
from sss_auto.inference.nnunet_layout import write_case_probabilities
from sss_auto.io.atomic import write_atomic
from sss_auto.io.nifti import image_stem, write_image
from sss_auto.postprocessing.components import ClassRule, apply_rules


def export_prediction(probabilities: np.ndarray, properties: CaseProperties, plans: Plans, path: Path,
                      save_probabilities: bool = False, postprocessing: dict[int, ClassRule] | None = None,
                      nnunet_layout: bool = False) -> np.ndarray:
    """Undo preprocessing, take the argmax, apply the postprocessing rules, write `path` atomically; returns the label map.

    Args:
        probabilities: float32 (K+1, z, y, x) on the cached grid.
        path: `<case>.nii.gz`; probabilities go to `<case>_probabilities.npz` beside it
            (float16 (K+1, z, y, x) in the raw array order, with the spacing; not postprocessed).
        postprocessing: per-class component rules (postprocessing.json of sss_find_best_configuration).
        nnunet_layout: probabilities as nnU-Net writes them instead: `<case>.npz` (float32) and
            `<case>.pkl` (nnunet_layout.py).

    Returns:
        uint8 (z, y, x) labels in the raw image's shape; class index = label value (dataset.json
        labels are consecutive from 0).
    """
    restored = restore_probabilities(probabilities, properties, plans)
    label = restored.argmax(0).astype(np.uint8)
    if postprocessing:
        label = apply_rules(label, postprocessing, properties.geometry.spacing_mm)
    if save_probabilities and nnunet_layout:
        write_case_probabilities(path, restored, properties.geometry)
    elif save_probabilities:
        write_probabilities(probabilities_path(path), restored, properties.geometry.spacing_mm)
    write_image(label, properties.geometry, path)
    return label


PROBABILITIES_SUFFIX = "_probabilities.npz"


def probabilities_path(label_path: Path) -> Path:
    """Where the probabilities of a prediction `<case>.nii.gz` are saved: `<case>_probabilities.npz` beside it."""
    return label_path.with_name(image_stem(label_path) + PROBABILITIES_SUFFIX)


def write_probabilities(path: Path, probabilities: np.ndarray, spacing_mm: tuple[float, ...]) -> None:
    """Save (K+1, z, y, x) probabilities as float16 with their spacing, atomically."""
    write_atomic(path, lambda handle: np.savez_compressed(handle, probabilities=probabilities.astype(np.float16),
                                                          spacing_mm=np.array(spacing_mm)))
