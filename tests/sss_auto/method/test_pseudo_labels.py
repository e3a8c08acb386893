import math

import pytest
import torch

from planners.fingerprint import ClassStats, Fingerprint
from sss_auto.method.pseudo_labels import (ClassPrior, priors_from_fingerprint, pseudo_label_metrics, summarize_epoch,
                                             vanished_classes)


def test_pseudo_label_metrics_count_all_confident_and_slices_per_class():
    y_hat = torch.zeros(2, 4, 4, dtype=torch.int64)
    y_hat[0, :2, :2] = 1  # 4 pixels of class 1 in slice 0
    y_hat[1, 0, 0] = 2  # 1 pixel of class 2 in slice 1
    confident = torch.ones(2, 4, 4, dtype=torch.bool)
    confident[0, 0, :2] = False  # 2 of the class-1 pixels are not confident
    confident[1, 0, 0] = False  # the class-2 pixel is not confident
    m = pseudo_label_metrics(y_hat, confident, 3)
    assert m["pl_1"] == pytest.approx(4 / 32) and m["plc_1"] == pytest.approx(2 / 32)
    assert m["pl_2"] == pytest.approx(1 / 32) and m["plc_2"] == 0
    assert m["pls_1"] == pytest.approx(0.5) and m["pls_2"] == 0 and m["pls_0"] == 1
    summary = summarize_epoch(m, 3)
    assert summary["mask_ratio_1"] == pytest.approx(0.5) and summary["mask_ratio_2"] == 0
    assert summary["mask_ratio_fg"] == pytest.approx(2 / 5)


def test_a_class_vanishes_below_a_tenth_of_its_labeled_share_and_absent_classes_never_do():
    priors = {1: ClassPrior(0.01, 0.3), 2: ClassPrior(0.001, 0.05), 3: ClassPrior(0.0, 0.0)}
    values = {"plc_1": 0.002, "plc_2": 0.00009, "plc_3": 0.0}
    assert vanished_classes(values, priors) == [(2, 0.00009, 0.001)]
    assert vanished_classes({"plc_1": 0.0, "plc_2": 0.0, "plc_3": 0.0}, priors) == [(1, 0.0, 0.01), (2, 0.0, 0.001)]


def test_priors_come_from_the_fingerprint_and_old_fingerprints_have_none():
    recorded = ClassStats(0.5, 2, 1, 1, 1, 1, 1, 1, 2, voxel_fraction=0.002, slice_presence_rate=0.1)
    old = ClassStats(0.5, 2, 1, 1, 1, 1, 1, 1, 2)
    fingerprint = Fingerprint(1, "x", ("CT",), {"background": 0, "a": 1, "b": 2}, (), (), {"1": recorded, "2": old})
    assert priors_from_fingerprint(fingerprint) == {1: ClassPrior(0.002, 0.1)}
    assert math.isclose(priors_from_fingerprint(fingerprint)[1].voxel_fraction, 0.002)
