"""Clips of consecutive slices (volumetric configuration): which slices, one window, one spatial transform."""

import numpy as np
import pytest

from sss_auto.data import augment
from sss_auto.data.clips import augment_clips, clip_slices, crop_clip


def test_a_clip_starts_at_its_prompt_slice_and_runs_up_or_down_inside_the_volume():
    rng = np.random.default_rng(0)
    directions = set()
    for anchor in (0, 5, 10, 19):
        for _ in range(20):
            slices = clip_slices(20, 5, anchor, rng)
            step = int(np.diff(slices)[0])
            assert len(slices) == 5 and slices[0] == anchor and np.all(np.diff(slices) == step) and abs(step) == 1
            assert slices.min() >= 0 and slices.max() < 20
            directions.add((anchor, step))
    assert {(0, 1), (19, -1), (10, 1), (10, -1)} <= directions and (0, -1) not in directions
    assert clip_slices(3, 5, 0, rng).tolist() == [0, 1, 2, 2, 2], "a short volume repeats its end slice"
    assert clip_slices(3, 5, 2, rng).tolist() == [2, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="anchor slice 20 is outside a volume of 20 slices"):
        clip_slices(20, 5, 20, rng)


def test_every_slice_of_a_clip_gets_the_same_window_and_the_same_spatial_transform():
    rng = np.random.default_rng(1)
    z, size, patch = 6, 40, 32
    seg = np.zeros((z, 64, 64), np.int16)
    seg[:, 20:34, 25:45] = 1  # the same object on every slice
    data = np.stack([seg.astype(np.float32) * (k + 1) for k in range(2)])  # two channels
    slices = clip_slices(z, 4, 2, rng)
    images, labels = crop_clip(data, slices, seg[slices], (27, 35), size, rng)
    assert images.shape == (4, 2, size, size) and labels.shape == (4, size, size)
    assert all(np.array_equal(labels[0], labels[k]) for k in range(4)), "one window for the whole clip"
    transform = augment.spatial_and_intensity(patch, intensity=False, p_spatial=1.0)
    moved = 0
    for _ in range(5):
        x, y = augment_clips(transform, np.stack([images, images]), np.stack([labels, labels]))
        assert x.shape == (2, 4, 2, patch, patch) and y.shape == (2, 4, patch, patch)
        for b in range(2):
            assert all(np.array_equal(y[b, 0], y[b, k]) for k in range(4)), "the slices stay registered"
            assert all(np.allclose(x[b, 0], x[b, k]) for k in range(4))
            np.testing.assert_allclose(x[b, :, 1], 2 * x[b, :, 0], atol=1e-4)  # channels move together
        moved += not np.array_equal(y[0, 0], y[1, 0])
    assert moved, "different clips of a batch get their own transform"
