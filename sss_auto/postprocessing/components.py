"""Connected-component rules applied to one class of a label map (scikit-image's 26-connected labelling)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sss_auto.regions import label_components


@dataclass(frozen=True)
class ClassRule:
    """What happens to one class's components; voxels removed become background.

    Attributes:
        keep_largest: keep only the largest connected component.
        min_component_ml: remove components smaller than this volume (None: none removed).
    """

    keep_largest: bool = False
    min_component_ml: float | None = None

    def is_identity(self) -> bool:
        return not self.keep_largest and self.min_component_ml is None

    def describe(self) -> str:
        if self.keep_largest:
            return "keep the largest component"
        if self.min_component_ml is not None:
            return f"remove components below {self.min_component_ml:.4g} ml"
        return "unchanged"


def describe_rules(rules: dict[int, ClassRule]) -> dict[str, str]:
    """Class value (as str) -> what its rule does, in class order (for prediction_info.json and the like)."""
    return {str(k): r.describe() for k, r in sorted(rules.items())}


def filter_components(mask: np.ndarray, rule: ClassRule, spacing_mm: tuple[float, ...]) -> np.ndarray:
    """bool mask of the components of `mask` that `rule` keeps."""
    if rule.is_identity():
        return mask
    components, count = label_components(mask)
    if count == 0:
        return mask
    sizes = np.bincount(components.ravel())[1:]  # voxels of components 1..count
    keep = np.ones(count, bool)
    if rule.min_component_ml is not None:
        keep &= sizes * float(np.prod(spacing_mm)) / 1000.0 >= rule.min_component_ml
    if rule.keep_largest:
        keep &= np.arange(count) == int(np.argmax(sizes))
    return np.isin(components, np.flatnonzero(keep) + 1)


def apply_rules(labels: np.ndarray, rules: dict[int, ClassRule], spacing_mm: tuple[float, ...]) -> np.ndarray:
    """`labels` with each class's rule applied (a new array; removed voxels become background).

    Rules act on disjoint classes, so their order does not matter.
    """
    out = labels
    for value, rule in sorted(rules.items()):
        if rule.is_identity():
            continue
        mask = labels == value
        removed = mask & ~filter_components(mask, rule, spacing_mm)
        if removed.any():
            out = out.copy() if out is labels else out
            out[removed] = 0
    return out
