"""Write a prediction back in the input's original geometry (and optionally its probabilities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from planners.plans import Plans
from preprocessing.case import CaseProperties, restore_probabilities
from sss_auto.io.atomic import write_atomic
from sss_auto.io.nifti import write_image
from sss_auto.postprocessing.components import ClassRule, apply_rules


def export_prediction(probabilities: np.ndarray, properties: CaseProperties, plans: Plans, path: Path,
                      save_probabilities: bool = False, postprocessing: dict[int, ClassRule] | None = None) -> np.ndarray:
    """Undo preprocessing, take the argmax, apply the postprocessing rules, write `path` atomically; returns the label map.

    Args:
        probabilities: float32 (K+1, z, y, x) on the cached grid.
        path: `<case>.nii.gz`; probabilities go to `<case>_probabilities.npz` beside it
            (float16 (K+1, z, y, x) in the raw array order, with the spacing; not postprocessed).
        postprocessing: per-class component rules (postprocessing.json of sss_find_best_configuration).

    Returns:
        uint8 (z, y, x) labels in the raw image's shape; class index = label value (dataset.json
        labels are consecutive from 0).
    """
    restored = restore_probabilities(probabilities, properties, plans)
    label = restored.argmax(0).astype(np.uint8)
    if postprocessing:
        label = apply_rules(label, postprocessing, properties.geometry.spacing_mm)
    if save_probabilities:
        name = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
        write_atomic(path.with_name(f"{name}_probabilities.npz"),
                     lambda handle: np.savez_compressed(handle, probabilities=restored.astype(np.float16),
                                                        spacing_mm=np.array(properties.geometry.spacing_mm)))
    write_image(label, properties.geometry, path)
    return label
