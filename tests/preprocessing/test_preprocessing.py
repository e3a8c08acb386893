import numpy as np
import pytest

from planners.fingerprint import extract_fingerprint
from planners.planner import plan
from planners.target import PlanTarget
from preprocessing.case import preprocess_case, restore_label, restore_probabilities
from preprocessing.cropping import crop, nonzero_bbox, uncrop
from preprocessing.normalization import ChannelNormalization, normalize
from preprocessing.resampling import resample_data, resample_label, separate_axis, target_shape
from sss_auto.dataset.integrity import read_case
from sss_auto.dataset.raw import load_dataset


def test_crop_and_uncrop_are_inverse():
    images = np.zeros((1, 6, 7, 8), np.float32)
    images[0, 1:4, 2:5, 3:7] = 1
    bbox = nonzero_bbox(images)
    assert bbox == ((1, 4), (2, 5), (3, 7))
    np.testing.assert_array_equal(uncrop(crop(images, bbox), bbox, (6, 7, 8)), images)


def test_ct_normalization_clips_then_zscores_and_zscore_is_per_image():
    images = np.array([[[[-1000.0, 0.0, 50.0, 3000.0]]], [[[1.0, 2.0, 3.0, 4.0]]]], np.float32)
    out = normalize(images, (ChannelNormalization("ct", -10.0, 100.0, 40.0, 20.0), ChannelNormalization("zscore")))
    np.testing.assert_allclose(out[0].ravel(), [-2.5, -2.0, 0.5, 3.0])
    assert abs(out[1].mean()) < 1e-6 and abs(out[1].std() - 1) < 1e-5


def test_thick_axis_is_resampled_separately_only_when_anisotropic():
    assert separate_axis((5.0, 1.0, 1.0), (5.0, 0.5, 0.5)) == 0
    assert separate_axis((1.0, 1.0, 1.2), (1.0, 1.0, 1.0)) is None
    assert target_shape((10, 100, 100), (5.0, 1.0, 1.0), (5.0, 0.5, 0.5)) == (10, 200, 200)


def test_label_resampling_round_trip_keeps_labels():
    label = np.zeros((6, 40, 40), np.int16)
    label[1:5, 10:30, 12:28] = 1
    label[2:4, 15:20, 15:20] = 2
    up = resample_label(label, (6, 80, 80), (5.0, 1.0, 1.0), (5.0, 0.5, 0.5))
    down = resample_label(up, (6, 40, 40), (5.0, 0.5, 0.5), (5.0, 1.0, 1.0))
    assert set(np.unique(up)) == {0, 1, 2}
    assert (down == label).mean() > 0.99  # only boundary voxels may move


def test_label_order_and_anisotropy_threshold_are_honoured():
    label = np.zeros((4, 9, 9), np.int16)
    label[:, 2:7, 2:7] = 1
    label[:, 3, 3] = 0
    nearest = resample_label(label, (4, 27, 27), (3.0, 1.0, 1.0), (3.0, 1 / 3, 1 / 3), order=0)
    linear = resample_label(label, (4, 27, 27), (3.0, 1.0, 1.0), (3.0, 1 / 3, 1 / 3), order=1)
    np.testing.assert_array_equal(nearest, label.repeat(3, axis=1).repeat(3, axis=2))  # order 0: blocks
    assert not np.array_equal(linear, nearest)
    ramp = np.linspace(0, 1, 8, dtype=np.float32)[:, None, None] * np.ones((1, 8, 8), np.float32)
    spacing, new = (4.0, 1.0, 1.0), (2.0, 1.0, 1.0)  # ratio 4: thick axis separate (nearest) unless the threshold is above 4
    separate = resample_data(ramp[None], (16, 8, 8), spacing, new, order=1, order_thick=0)
    together = resample_data(ramp[None], (16, 8, 8), spacing, new, order=1, order_thick=0, anisotropy=5.0)
    assert len(np.unique(separate)) == 8 and len(np.unique(together)) > 8


def test_image_resampling_preserves_smooth_signal():
    z, y, x = np.meshgrid(np.arange(4), np.linspace(0, 1, 32), np.linspace(0, 1, 32), indexing="ij")
    data = (np.sin(3 * y) + x).astype(np.float32)[None]
    up = resample_data(data, (4, 64, 64), (5.0, 1.0, 1.0), (5.0, 0.5, 0.5))
    back = resample_data(up, (4, 32, 32), (5.0, 0.5, 0.5), (5.0, 1.0, 1.0))
    assert up.shape == (1, 4, 64, 64)
    assert np.abs(back - data)[:, :, 2:-2, 2:-2].max() < 0.02


@pytest.fixture
def planned(dataset_dir):
    dataset = load_dataset(dataset_dir)
    fingerprint = extract_fingerprint(dataset, num_processes=1, progress=False)
    return dataset, plan(fingerprint, PlanTarget("cuda", 8.0), "test")


def test_preprocess_then_restore_reproduces_the_label(planned):
    dataset, plans = planned
    case = dataset.cases("labeled")[0]
    images, label, geometry = read_case(case, set(plans.labels.values()))
    cached = preprocess_case(case.case_id, images, label, geometry, plans, "2d")
    assert cached.data.dtype == np.float32 and cached.data.shape[1:] == cached.seg.shape
    assert cached.seg.shape[0] == geometry.shape[0]  # 2d keeps slices
    restored = restore_label(cached.seg, cached.properties, plans)
    assert restored.shape == label.shape
    agreement = (restored == label)[label > 0].mean()
    assert agreement > 0.9, agreement  # tolerance: boundary voxels of small objects move in resampling
    probs = np.eye(len(plans.labels), dtype=np.float32)[cached.seg].transpose(3, 0, 1, 2)
    restored_probs = restore_probabilities(probs, cached.properties, plans)
    assert restored_probs.shape == (len(plans.labels),) + label.shape
    np.testing.assert_allclose(restored_probs.sum(0), 1.0, atol=1e-4)
    fg = cached.foreground
    assert fg.shape[1] == 4 and (cached.seg[fg[:, 1], fg[:, 2], fg[:, 3]] == fg[:, 0]).all()


def test_transposed_plans_are_undone_on_restore(planned):
    dataset, plans = planned
    from dataclasses import replace

    plans = replace(plans, transpose_forward=(2, 0, 1), transpose_backward=(1, 2, 0))
    case = dataset.cases("labeled")[1]
    images, label, geometry = read_case(case, set(plans.labels.values()))
    cached = preprocess_case(case.case_id, images, label, geometry, plans, "2d")
    assert cached.seg.shape[0] == geometry.shape[2]
    assert restore_label(cached.seg, cached.properties, plans).shape == label.shape


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("zoom", [(1.0, 0.73, 0.73), (1.0, 1.4, 1.2), (0.5, 1.0, 1.3)])
def test_an_axis_that_keeps_its_size_is_zoomed_slice_by_slice_with_the_same_values(order, zoom):
    """The 2D path (a kept axis is not interpolated) gives exactly the 3D spline zoom's float32 values."""
    from scipy import ndimage

    from preprocessing.resampling import _zoom

    volume = np.random.default_rng(order).normal(size=(9, 40, 36)).astype(np.float32)
    three_d = ndimage.zoom(volume, zoom, order=order, mode="nearest", grid_mode=True, prefilter=order > 1)
    np.testing.assert_array_equal(_zoom(volume, np.array(zoom), order), three_d)
