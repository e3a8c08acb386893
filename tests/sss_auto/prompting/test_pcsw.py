import numpy as np
import pytest

from planners.plans import TrainingPlan
from sss_auto.prompting.from_masks import box_and_point, prompts_from_label_maps
from sss_auto.prompting.pcsw import ClassConstraint, pcsw, pcsw_label_volume, window_lengths

SPACING = (1.0, 1.0, 1.0)
TAU = TrainingPlan.pcsw_tau  # the planned default


def _tube(slices=range(4, 14), shape=(18, 32, 32), center=(16, 16), radius=4):
    mask = np.zeros(shape, bool)
    yy, xx = np.mgrid[:shape[1], :shape[2]]
    disc = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2
    for z in slices:
        mask[z] = disc
    return mask


def test_window_lengths_start_in_the_middle_widen_then_shrink_to_two():
    assert window_lengths(18) == [7, 6, 8, 9, 5, 4, 3, 2]
    assert window_lengths(3) == [2]
    assert min(window_lengths(30)) == 2


def test_continuous_object_is_accepted_with_all_its_slices():
    result = pcsw(_tube().astype(np.float32), SPACING, tau=TAU)
    assert result.status == "window" and result.ratio == 1.0
    np.testing.assert_array_equal(result.mask, _tube())


def test_fragmented_mask_is_rejected_and_falls_back_to_the_largest_slice():
    rng = np.random.default_rng(0)
    mask = rng.random((18, 32, 32)) < 0.03  # speckle: many tiny components everywhere
    mask[9, 5:9, 5:12] = True  # the largest 2D area sits on slice 9
    result = pcsw(mask, SPACING, tau=TAU)
    assert result.status == "fallback"
    assert result.mask.sum(axis=(1, 2)).nonzero()[0].tolist() == [9]


def test_several_classes_get_separate_objects():
    probs = np.zeros((3, 18, 32, 32), np.float32)
    probs[1][_tube(center=(8, 8), radius=3)] = 0.9
    probs[2][_tube(center=(24, 24), radius=3)] = 0.9
    probs[0] = 1 - probs[1] - probs[2]
    label_volume, results = pcsw_label_volume(probs, SPACING, TAU)
    assert [r.status for r in results] == ["window", "window"]
    assert label_volume[9, 8, 8] == 1 and label_volume[9, 24, 24] == 2
    prompts = prompts_from_label_maps(label_volume[9:10], 2)
    assert prompts.valid.tolist() == [[True, True]]
    assert prompts.boxes[0, 0].tolist() == [5.0, 5.0, 12.0, 12.0]


def test_point_lies_inside_a_concave_object():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:12] = True  # an L shape: the box centre (≈ 20, 20) is outside it
    mask[28:35, 5:35] = True
    box, point = box_and_point(mask)
    x, y = int(point[0]), int(point[1])
    assert mask[y, x]
    assert box.tolist() == [5.0, 5.0, 35.0, 35.0]


def test_physically_implausible_component_is_dropped():
    mask = _tube(radius=6)  # 10 slices of a 113-pixel disc: ~1130 mm³
    too_small_range = ClassConstraint(1.0, 200.0, 1, 20)
    result = pcsw(mask, SPACING, TAU, constraint=too_small_range)
    assert result.status == "none" and result.dropped == 1
    plausible = ClassConstraint(500.0, 5000.0, 2, 20)
    assert pcsw(mask, SPACING, TAU, constraint=plausible).status == "window"


def test_implausible_component_is_dropped_but_a_plausible_one_is_kept():
    mask = _tube(center=(8, 8), radius=3) | _tube(slices=range(0, 18), center=(24, 24), radius=6)
    result = pcsw(mask, SPACING, TAU, constraint=ClassConstraint(100.0, 600.0, 2, 12))
    assert result.dropped == 1 and result.status == "window"
    assert result.mask[9, 8, 8] and not result.mask[9, 24, 24]


def test_small_lesion_on_two_slices_still_gets_a_prompt():
    mask = np.zeros((30, 32, 32), bool)
    mask[14:16, 10:12, 10:12] = True
    result = pcsw(mask, SPACING, TAU)
    assert result.status == "window" and result.mask.sum() == 8


def test_empty_class_gets_no_prompt():
    result = pcsw(np.zeros((10, 16, 16), np.float32), SPACING, TAU)
    assert result.status == "none" and result.mask is None
    assert not prompts_from_label_maps(np.zeros((2, 16, 16), np.uint8), 3).valid.any()


def test_constraint_widens_the_fingerprint_ranges():
    c = ClassConstraint.from_stats(100.0, 1000.0, 2, 10)
    assert (c.volume_mm3_min, c.volume_mm3_max) == (50.0, 2000.0)
    assert c.slice_extent_min == 1 and c.slice_extent_max == 21


@pytest.mark.parametrize("seed", [0, 1])
def test_jittered_boxes_stay_in_the_image_and_near_the_object(seed):
    labels = np.zeros((1, 32, 32), np.uint8)
    labels[0, 10:20, 12:22] = 1
    prompts = prompts_from_label_maps(labels, 1, np.random.default_rng(seed))
    box = prompts.boxes[0, 0].numpy()
    assert np.all(np.abs(box - [12, 10, 22, 20]) <= 1.0 + 1e-5)
    assert np.all(box >= 0) and np.all(box <= 32)
