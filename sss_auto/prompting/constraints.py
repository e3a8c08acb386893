"""PCSW's physical constraints per class, learned from the labeled components counted in the fingerprint."""

from __future__ import annotations

from planners.fingerprint import Fingerprint
from planners.plans import Plans
from sss_auto.prompting.pcsw import ClassConstraint


def constraints_from_fingerprint(fingerprint: Fingerprint, plans: Plans) -> dict[int, ClassConstraint]:
    """PCSW's physical constraints per class value, from the labeled components in the fingerprint.

    Slice extents are only used when the slice axis was not transposed (they were counted on the
    raw first axis); classes never seen in labeled data get no constraint.
    """
    constraints = {}
    slices_kept = plans.transpose_forward[0] == 0
    for value, stats in fingerprint.classes.items():
        if stats.num_components == 0:
            continue
        extent = (stats.slice_extent_min, stats.slice_extent_max) if slices_kept else (1, 10**6)
        constraints[int(value)] = ClassConstraint.from_stats(stats.volume_mm3_min, stats.volume_mm3_max, *extent)
    return constraints
