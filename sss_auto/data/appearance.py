"""The unlabeled scans' appearance lent to labeled slices (`labeled_augmentation: unlabeled_appearance`).

Scanners differ in calibration and noise. A few labeled cases show the network a few scanners; the
unlabeled pool shows many. Each case's appearance is measured from its voxels alone, no labels:
per channel, the *level* (median of the voxels above the channel's floor, which after CT clipping is
mostly brain or soft tissue) and the *noise* (robust SD of neighbouring-voxel differences). A labeled
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


@dataclass(frozen=True)
class Appearance:
    """One case's appearance per channel, in normalized intensities: arrays of shape (C,)."""

    level: np.ndarray  # median of the voxels above the floor
    noise: np.ndarray  # robust SD of the noise
    floor: np.ndarray  # smallest value (CT: the clip floor; voxels there carry no level)
    ceiling: np.ndarray  # largest value


def measure_appearance(data: np.ndarray) -> Appearance:
    """The appearance of a case (C, Z, Y, X) from up to MAX_MEASURED_SLICES evenly spaced slices."""
    depth = data.shape[1]
    picked = np.unique(np.linspace(0, depth - 1, min(depth, MAX_MEASURED_SLICES)).round().astype(int))
    level, noise, floor, ceiling = [], [], [], []
    for channel in range(data.shape[0]):
        volume = np.asarray(data[channel][picked], dtype=np.float32)
        low, high = float(volume.min()), float(volume.max())
        inside = volume > low + 1e-6 * max(high - low, 1e-6)
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

    Voxels above the floor move by the level difference and get the missing noise; the result stays
    within the case's [floor, ceiling] (what the normalization's clipping would have done).
    """
    out = np.array(image, dtype=np.float32, copy=True)
    for channel in range(out.shape[0]):
        floor, ceiling = own.floor[channel], own.ceiling[channel]
        inside = out[channel] > floor + 1e-6 * max(float(ceiling - floor), 1e-6)
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
