import math

import numpy as np
import pytest

from sss_auto.evaluation.metrics import class_metrics


def test_dice_and_iou_by_hand():
    p = np.zeros((1, 4, 4), bool)
    r = np.zeros((1, 4, 4), bool)
    p[0, :2, :2] = True  # 4 voxels
    r[0, :2, :3] = True  # 6 voxels, 4 shared
    m = class_metrics(p, r)
    assert m["dice"] == pytest.approx(8 / 10) and m["iou"] == pytest.approx(4 / 6)


def test_empty_conventions():
    empty = np.zeros((2, 3, 3), bool)
    some = empty.copy()
    some[0, 1, 1] = True
    both = class_metrics(empty, empty, (1.0, 1.0, 1.0))
    assert all(math.isnan(v) for v in both.values())
    one = class_metrics(empty, some, (1.0, 1.0, 1.0))
    assert one["dice"] == 0 and one["iou"] == 0 and math.isnan(one["hd95_mm"]) and math.isnan(one["asd_mm"])
    assert math.isnan(class_metrics(np.zeros((2, 2), bool), np.zeros((2, 2), bool))["dice"])


def test_hd95_uses_anisotropic_spacing():
    reference = np.zeros((10, 10, 10), bool)
    reference[4, 4, 4] = True
    prediction = np.zeros_like(reference)
    prediction[6, 4, 4] = True  # 2 slices away along z
    m = class_metrics(prediction, reference, (3.0, 0.5, 0.5))
    assert m["hd95_mm"] == pytest.approx(6.0) and m["asd_mm"] == pytest.approx(6.0)
    prediction = np.zeros_like(reference)
    prediction[4, 4, 8] = True  # 4 voxels away along x
    assert class_metrics(prediction, reference, (3.0, 0.5, 0.5))["hd95_mm"] == pytest.approx(2.0)


def test_identical_masks_have_zero_distance_and_surface_distances_are_symmetric():
    a = np.zeros((6, 12, 12), bool)
    a[1:5, 2:9, 3:10] = True
    assert class_metrics(a, a, (2.0, 1.0, 1.0))["hd95_mm"] == 0.0
    b = np.zeros_like(a)
    b[1:5, 2:9, 5:12] = True
    ab, ba = class_metrics(a, b, (2.0, 1.0, 1.0)), class_metrics(b, a, (2.0, 1.0, 1.0))
    assert ab["hd95_mm"] == pytest.approx(ba["hd95_mm"]) and 0 < ab["asd_mm"] <= 2.0
