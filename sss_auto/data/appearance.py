"""The unlabeled scans' appearance lent to labeled slices (`labeled_augmentation: unlabeled_appearance`).

Scanners differ in calibration and noise. A few labeled cases show the network a few scanners; the
unlabeled pool shows many. Each case's appearance is measured from its voxels alone, no labels:
per channel, the *level* (median of the voxels strictly between the channel's floor and ceiling, which
after CT clipping are mostly brain or soft tissue) and the *noise* (robust SD of neighbouring-voxel
differences there). The floor and ceiling are the clipped plateaus where there are any (the most
frequent value of each half of the intensities, if it holds PLATEAU_SHARE of the voxels), else the
extremes; resampling after normalization rings around the plateaus, so "strictly between" keeps
PLATEAU_MARGIN of the intensity span away from both. A labeled
slice then takes, with probability APPEARANCE_PROBABILITY, the level of a random unlabeled case
(its in-window voxels shifted by the difference) and its noise where that is higher (Gaussian noise
added to make up the difference; noise cannot be removed). The label is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sss_auto.data.cache import CaseCache

APPEARANCE_PROBABILITY = 0.5
MAX_MEASURED_SLICES = 8  # slices per case the measurement reads (evenly spaced), so big pools measure quickly
PLATEAU_MARGIN = 0.01  # share of [floor, ceiling] counted as the clipped plateaus (resampling smears them)
PLATEAU_SHARE = 0.01  # a value held by this share of the voxels is a clipped plateau


@dataclass(frozen=True)
class Appearance:
    """One case's appearance per channel, in normalized intensities: arrays of shape (C,)."""

    level: np.ndarray  # median of the voxels between the plateaus
    noise: np.ndarray  # robust SD of the noise
    floor: np.ndarray  # the lower clipped plateau (CT: the clip floor), else the smallest value
    ceiling: np.ndarray  # the upper clipped plateau, else the largest value


def between_plateaus(values: np.ndarray, floor: float, ceiling: float) -> np.ndarray:
    """Where `values` lie strictly between the clipped floor and ceiling plateaus (PLATEAU_MARGIN from each)."""
    margin = PLATEAU_MARGIN * max(ceiling - floor, 1e-6)
    return (values > floor + margin) & (values < ceiling - margin)


def plateaus(values: np.ndarray) -> tuple[float, float]:
    """(floor, ceiling) of intensities: per half, its most frequent value if it holds PLATEAU_SHARE of them, else
    the extreme."""
    unique, counts = np.unique(values, return_counts=True)
    middle = np.median(values)
    bounds = []
    for half, extreme in ((unique <= middle, unique[0]), (unique > middle, unique[-1])):
        if half.any() and counts[half].max() >= PLATEAU_SHARE * values.size:
            bounds.append(float(unique[half][np.argmax(counts[half])]))
        else:
            bounds.append(float(extreme))
    return bounds[0], bounds[1]


def measure_appearance(data: np.ndarray) -> Appearance:
    """The appearance of a case (C, Z, Y, X) from up to MAX_MEASURED_SLICES evenly spaced slices."""
    depth = data.shape[1]
    picked = np.unique(np.linspace(0, depth - 1, min(depth, MAX_MEASURED_SLICES)).round().astype(int))
    level, noise, floor, ceiling = [], [], [], []
    for channel in range(data.shape[0]):
        volume = np.asarray(data[channel][picked], dtype=np.float32)
        low, high = plateaus(volume)
        inside = between_plateaus(volume, low, high)
        level.append(float(np.median(volume[inside])) if inside.any() else low)
        pairs = inside[..., 1:] & inside[..., :-1]
        differences = (volume[..., 1:] - volume[..., :-1])[pairs]
        mad = float(np.median(np.abs(differences - np.median(differences)))) if differences.size else 0.0
        noise.append(1.4826 * mad / np.sqrt(2))
        floor.append(low)
        ceiling.append(high)
    return Appearance(*(np.asarray(values, np.float32) for values in (level, noise, floor, ceiling)))


def lend_appearance(image: np.ndarray, own: Appearance, donor: Appearance, rng: np.random.Generator) -> np.ndarray:
    """`image` (C, H, W) of a case with appearance `own`, shown as the `donor` case would show it.

    Voxels between the plateaus move by the level difference and get the missing noise; the result
    stays within the case's [floor, ceiling] (what the normalization's clipping would have done).
    """
    out = np.array(image, dtype=np.float32, copy=True)
    for channel in range(out.shape[0]):
        floor, ceiling = own.floor[channel], own.ceiling[channel]
        inside = between_plateaus(out[channel], float(floor), float(ceiling))
        extra_noise = float(np.sqrt(max(float(donor.noise[channel] ** 2 - own.noise[channel] ** 2), 0.0)))
        shifted = out[channel] + (donor.level[channel] - own.level[channel])
        if extra_noise > 0:
            shifted = shifted + rng.normal(0.0, extra_noise, shifted.shape).astype(np.float32)
        out[channel] = np.where(inside, np.clip(shifted, floor, ceiling), out[channel])
    return out


@dataclass(frozen=True)
class AppearanceBank:
    """Measured appearances of the labeled cases and of the unlabeled donors they borrow from."""

    cases: dict[str, Appearance]
    donors: tuple[str, ...]
    probability: float = APPEARANCE_PROBABILITY

    def lend(self, case_id: str, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """With `probability`, `image` (C, H, W) of `case_id` with a random donor's appearance; else unchanged."""
        if not self.donors or rng.random() >= self.probability:
            return image
        donor = self.donors[rng.integers(len(self.donors))]
        return lend_appearance(image, self.cases[case_id], self.cases[donor], rng)


def appearance_bank(cache: CaseCache, labeled_ids: list[str], donor_ids: list[str]) -> AppearanceBank:
    """Measure the labeled cases and the unlabeled donors of a cache (memory-mapped; a few slices each)."""
    return AppearanceBank({case_id: measure_appearance(cache.load(case_id).data)
                           for case_id in dict.fromkeys([*labeled_ids, *donor_ids])}, tuple(donor_ids))
