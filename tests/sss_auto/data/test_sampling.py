from types import SimpleNamespace

import numpy as np

from sss_auto.data.sampling import choose_slice_and_center, crop_slice


def test_crop_of_a_larger_slice_is_a_window_of_it_with_label_aligned():
    rng = np.random.default_rng(0)
    image = np.arange(2 * 40 * 50, dtype=np.float32).reshape(2, 40, 50)
    label = (np.arange(40 * 50).reshape(40, 50) % 7).astype(np.int16)
    for _ in range(20):
        crop, crop_label = crop_slice(image, label, (20, 25), 16, rng)
        assert crop.shape == (2, 16, 16) and crop_label.shape == (16, 16)
        y0, x0 = np.argwhere(image[0] == crop[0, 0, 0])[0]  # every value is unique: find the window
        np.testing.assert_array_equal(crop, image[:, y0:y0 + 16, x0:x0 + 16])
        np.testing.assert_array_equal(crop_label, label[y0:y0 + 16, x0:x0 + 16])
        assert abs(y0 + 8 - 20) <= 4 and abs(x0 + 8 - 25) <= 4  # offset at most a quarter of the patch


def test_crop_of_a_smaller_slice_keeps_all_of_it_and_pads_with_zeros():
    rng = np.random.default_rng(1)
    image = np.ones((1, 10, 12), np.float32)
    label = np.full((10, 12), 3, np.int16)
    crop, crop_label = crop_slice(image, label, (5, 6), 32, rng)
    assert crop.sum() == 10 * 12 and (crop_label == 3).sum() == 10 * 12  # nothing of the slice is cut
    assert set(np.unique(crop_label)) == {0, 3}


def test_forced_foreground_centre_is_a_voxel_of_a_present_class():
    rng = np.random.default_rng(2)
    foreground = np.array([[1, 0, 3, 4], [1, 0, 3, 5], [2, 4, 7, 7]], np.int32)
    volume = SimpleNamespace(data=np.zeros((1, 5, 10, 10), np.float32), foreground=foreground)
    picked = {choose_slice_and_center(volume, rng, force_foreground=True) for _ in range(60)}
    assert picked == {(0, 3, 4), (0, 3, 5), (4, 7, 7)}
    empty = SimpleNamespace(data=volume.data, foreground=np.zeros((0, 4), np.int32))
    z, y, x = choose_slice_and_center(empty, rng, force_foreground=True)  # nothing to force: uniform
    assert 0 <= z < 5 and 0 <= y < 10 and 0 <= x < 10
