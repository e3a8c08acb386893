"""PCSW — Physical Constraints + Sliding Window: keep one plausible, continuous object per class.

Given one class's coarse probability over a whole volume (S, H, W) on the cached grid:

1. threshold at 0.5 and split into 26-connected components;
2. drop components whose physical volume (mm³) or slice extent lies outside the range seen for the
   class in the labeled data (from the fingerprint), widened by a tolerance;
3. slide windows of N consecutive slices (N from ⌊S/3⌋ to ⌊S/2⌋, starting at the middle length and
   widening both ways, then shorter windows down to 2); a window is continuous when its largest
   component holds ≥ τ of the window's foreground voxels. The first length with a continuous window
   wins; among its windows the highest ratio (then the most voxels) is best;
4. the largest component of the best window is kept (all of its slices);
5. fallback: no continuous window → the largest 2D component of the slice with the largest area;
   nothing left → no prompt (the class is treated as absent).

Components are labeled once on the whole volume, not per window (a component that only connects
outside a window still counts as one inside it); see documentation/method.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sss_auto.regions import first_axis_extents, label_components

VOLUME_TOLERANCE = 2.0  # component volume may be 2× smaller/larger than seen in training
EXTENT_TOLERANCE = 2.0  # slice extent likewise, and at least ±1 slice
MIN_WINDOW = 2


@dataclass(frozen=True)
class ClassConstraint:
    """Plausible sizes of one class's objects (already widened by the tolerance)."""

    volume_mm3_min: float
    volume_mm3_max: float
    slice_extent_min: int
    slice_extent_max: int

    @classmethod
    def from_stats(cls, volume_mm3_min: float, volume_mm3_max: float, extent_min: int, extent_max: int) -> ClassConstraint:
        """Widen the fingerprint's ranges by the tolerances (extents in slices: a 2d plan keeps each case's slices)."""
        lo = extent_min / EXTENT_TOLERANCE
        hi = extent_max * EXTENT_TOLERANCE
        return cls(volume_mm3_min / VOLUME_TOLERANCE, volume_mm3_max * VOLUME_TOLERANCE,
                   max(1, int(np.floor(lo))), int(np.ceil(hi)) + 1)


@dataclass(frozen=True)
class PCSWResult:
    """What PCSW kept for one class.

    Attributes:
        mask: bool (S, H, W) of the kept object, or None when the class gets no prompt.
        status: "window" (continuous window found), "fallback" (largest slice), or "none".
        window: (first slice, length) of the best window, or None.
        ratio: largest-component share of the best window (0 when none).
        dropped: number of components removed by the physical constraints.
    """

    mask: np.ndarray | None
    status: str
    window: tuple[int, int] | None
    ratio: float
    dropped: int


def window_lengths(num_slices: int) -> list[int]:
    """Window lengths in the order tried: middle of [⌊S/3⌋, ⌊S/2⌋], widening both ways, then shorter."""
    lo, hi = max(MIN_WINDOW, num_slices // 3), max(MIN_WINDOW, num_slices // 2)
    hi = min(hi, num_slices)
    lo = min(lo, hi)
    middle = (lo + hi) // 2
    order = [middle]
    for step in range(1, hi - lo + 1):
        order += [n for n in (middle - step, middle + step) if lo <= n <= hi]
    order += list(range(lo - 1, MIN_WINDOW - 1, -1))
    return [n for n in order if n <= num_slices]


def pcsw(probability: np.ndarray, spacing_mm: tuple[float, float, float], tau: float,
         constraint: ClassConstraint | None = None) -> PCSWResult:
    """Run PCSW for one class.

    Args:
        probability: float (S, H, W) coarse probability of the class (or a bool mask).
        spacing_mm: (z, y, x) voxel spacing of the array.
        tau: continuity threshold (share of the window's foreground in its largest component).
        constraint: plausible object sizes, or None to test continuity only.
    """
    mask = probability >= 0.5 if probability.dtype != bool else probability
    components, count = label_components(mask)
    if count == 0:
        return PCSWResult(None, "none", None, 0.0, 0)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    dropped = 0
    if constraint is not None:
        voxel_mm3 = float(np.prod(spacing_mm))
        for index, extent in enumerate(first_axis_extents(components), start=1):
            volume = sizes[index] * voxel_mm3
            if not (constraint.volume_mm3_min <= volume <= constraint.volume_mm3_max
                    and constraint.slice_extent_min <= extent <= constraint.slice_extent_max):
                components[components == index] = 0
                sizes[index] = 0
                dropped += 1
        if not sizes[1:].any():
            return PCSWResult(None, "none", None, 0.0, dropped)
    per_slice = _component_counts_per_slice(components, count)  # (S, count+1)
    for length in window_lengths(mask.shape[0]):
        best = _best_window(per_slice, length, tau)
        if best is not None:
            start, ratio, label = best
            return PCSWResult(components == label, "window", (start, length), ratio, dropped)
    return _fallback(components > 0, dropped)


def _component_counts_per_slice(components: np.ndarray, count: int) -> np.ndarray:
    """Voxels of each component in each slice, (S, count+1); column 0 (background) zeroed."""
    out = np.stack([np.bincount(s.ravel(), minlength=count + 1) for s in components])
    out[:, 0] = 0
    return out


def _best_window(per_slice: np.ndarray, length: int, tau: float) -> tuple[int, float, int] | None:
    """(start, ratio, component label) of the best continuous window of `length`, or None."""
    cumulative = np.concatenate([np.zeros((1, per_slice.shape[1]), per_slice.dtype), per_slice.cumsum(0)])
    windows = cumulative[length:] - cumulative[:-length]  # (S-length+1, count+1)
    totals = windows.sum(1)
    largest = windows.max(1)
    ratios = np.divide(largest, totals, out=np.zeros(len(totals)), where=totals > 0)
    accepted = np.flatnonzero((totals > 0) & (ratios >= tau))
    if accepted.size == 0:
        return None
    start = accepted[np.lexsort((-totals[accepted], -ratios[accepted]))[0]]
    return int(start), float(ratios[start]), int(windows[start].argmax())


def _fallback(mask: np.ndarray, dropped: int) -> PCSWResult:
    areas = mask.reshape(mask.shape[0], -1).sum(1)
    if areas.max() == 0:
        return PCSWResult(None, "none", None, 0.0, dropped)
    z = int(areas.argmax())
    labeled, _ = label_components(mask[z], fully_connected=False)
    largest = np.bincount(labeled.ravel())[1:].argmax() + 1
    kept = np.zeros_like(mask)
    kept[z] = labeled == largest
    return PCSWResult(kept, "fallback", None, 0.0, dropped)


def pcsw_label_volume(probabilities: np.ndarray, spacing_mm: tuple[float, float, float], tau: float,
                      constraints: dict[int, ClassConstraint] | None = None) -> tuple[np.ndarray, list[PCSWResult]]:
    """PCSW for every foreground class of a probability volume.

    Args:
        probabilities: float (K+1, S, H, W) softmax probabilities (class 0 = background).
        constraints: class value -> constraint (a class without one is tested for continuity only).

    Returns:
        uint8 (S, H, W) map of the kept objects (value = class; disjoint since p > 0.5 is exclusive),
        and the per-class results (index k-1 for class k).
    """
    out = np.zeros(probabilities.shape[1:], np.uint8)
    results = []
    for k in range(1, probabilities.shape[0]):
        result = pcsw(probabilities[k], spacing_mm, tau, (constraints or {}).get(k))
        results.append(result)
        if result.mask is not None:
            out[result.mask & (out == 0)] = k
    return out, results
