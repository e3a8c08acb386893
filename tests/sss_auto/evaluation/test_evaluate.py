import csv
import math

import numpy as np
import pytest

from sss_auto.errors import SSSError
from sss_auto.evaluation.conventions import convention
from sss_auto.evaluation.evaluate import evaluate_folders, format_table, per_case_csv_path, write_summary
from tests.conftest import write_volume


def test_per_case_csv_has_one_row_per_case_and_class_with_volumes_in_ml(tmp_path):
    reference, prediction = np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8)
    reference[0, :2, :2] = 1  # 4 voxels of class 1; class 2 absent from both
    prediction[0, :2, :1] = 1  # 2 of them found
    for folder, array in (("ref", reference), ("pred", prediction)):
        write_volume(tmp_path / folder / "case_a.nii.gz", array, spacing=(5.0, 2.0, 1.0))  # 10 mm³ per voxel
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", [1, 2], progress=False)
    table = write_summary(summary, tmp_path / "pred" / "summary.json", {"1": "IPH", "2": "IVH"})
    assert table == tmp_path / "pred" / "per_case.csv" and (tmp_path / "pred" / "summary.json").is_file()
    rows = list(csv.DictReader(table.open()))
    assert [(r["case"], r["class"], r["class_name"]) for r in rows] == [("case_a", "1", "IPH"), ("case_a", "2", "IVH")]
    first = rows[0]
    assert float(first["dice"]) == pytest.approx(2 * 2 / 6) and float(first["iou"]) == pytest.approx(2 / 4)
    assert float(first["reference_ml"]) == pytest.approx(0.04) and float(first["prediction_ml"]) == pytest.approx(0.02)
    assert rows[1]["dice"] == "" and float(rows[1]["reference_ml"]) == 0.0  # absent from both: no Dice, zero volume
    assert math.isnan(summary["mean_per_class"]["2"]["dice"]) and "reference_ml" not in summary["mean"]


def test_per_case_csv_path_follows_the_summary_name(tmp_path):
    assert per_case_csv_path(tmp_path / "summary.json").name == "per_case.csv"
    assert per_case_csv_path(tmp_path / "fold0.json").name == "fold0_per_case.csv"


def _one_voxel_apart(tmp_path):
    """Class 1: one reference voxel and one predicted voxel a slice (5 mm) above it; class 2 absent from both."""
    reference, prediction = np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)
    reference[1, 1, 1] = 1
    prediction[2, 1, 1] = 1
    for folder, array in (("ref", reference), ("pred", prediction)):
        write_volume(tmp_path / folder / "case_a.nii.gz", array, spacing=(5.0, 2.0, 1.0))


def test_nnunet_convention_leaves_a_class_absent_from_both_out_and_reports_mm(tmp_path):
    _one_voxel_apart(tmp_path)
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", [1, 2], progress=False, convention=convention("nnunet"))
    case = summary["per_case"]["case_a"]
    assert case["1"]["dice"] == 0.0 and case["1"]["hd95_mm"] == pytest.approx(5.0) and case["1"]["asd_mm"] == pytest.approx(5.0)
    assert math.isnan(case["2"]["dice"]) and "hd95_vox" not in case["1"]
    assert summary["mean"]["dice"] == 0.0 and summary["convention"] == "nnunet" and summary["n_undefined_distance"] == 0


def test_ssl4mis_convention_scores_a_class_absent_from_both_zero_and_adds_voxel_distances(tmp_path):
    _one_voxel_apart(tmp_path)
    (tmp_path / "pred" / "case_b.nii.gz").write_bytes((tmp_path / "ref" / "case_a.nii.gz").read_bytes())
    (tmp_path / "ref" / "case_b.nii.gz").write_bytes((tmp_path / "ref" / "case_a.nii.gz").read_bytes())
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", [1, 2], progress=False, convention=convention("ssl4mis"))
    a, b = summary["per_case"]["case_a"], summary["per_case"]["case_b"]
    assert a["1"]["hd95_vox"] == pytest.approx(1.0) and a["1"]["hd95_mm"] == pytest.approx(5.0)  # one slice = 5 mm
    assert b["1"]["dice"] == 1.0 and b["1"]["hd95_vox"] == 0.0
    assert a["2"]["dice"] == 0.0 and math.isnan(a["2"]["hd95_vox"])  # medpy's dc: absent from both scores 0
    assert summary["mean_per_class"]["1"]["dice"] == pytest.approx(0.5) and summary["mean_per_class"]["2"]["dice"] == 0.0
    assert summary["mean"]["dice"] == pytest.approx(0.25) and summary["n_undefined_distance"] == 0
    assert summary["metrics"] == ["dice", "iou", "hd95_mm", "asd_mm", "hd95_vox", "asd_vox"]
    table = write_summary(summary, tmp_path / "s.json")
    assert next(csv.reader(table.open()))[3:9] == summary["metrics"]


def test_unknown_convention_is_refused_by_name():
    with pytest.raises(SSSError, match="unknown evaluation convention 'brats'.*nnunet, ssl4mis, mbhseg"):
        convention("brats")


def _mbhseg_cases(tmp_path):
    """Three cases, classes 1 and 2.

    lesion: class 1 half found (Dice 2*2/(4+2)), class 2 absent from the reference but predicted (3 voxels);
    healthy_fp20: no foreground in the reference, 20 predicted voxels of class 2;
    healthy_fp150: no foreground in the reference, 150 predicted voxels of class 1.
    """
    shape = (4, 10, 10)
    cases = {}
    reference, prediction = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    reference[0, :2, :2] = 1
    prediction[0, :2, :1] = 1
    prediction[3, 0, :3] = 2
    cases["lesion"] = reference, prediction
    prediction = np.zeros(shape, np.uint8)
    prediction[1, :2, :10] = 2
    cases["healthy_fp20"] = np.zeros(shape, np.uint8), prediction
    prediction = np.zeros(shape, np.uint8)
    prediction[:2, :, :] = 1
    prediction[2, :5, :] = 1
    cases["healthy_fp150"] = np.zeros(shape, np.uint8), prediction
    for case, (ref, pred) in cases.items():
        write_volume(tmp_path / "ref" / f"{case}.nii.gz", ref)
        write_volume(tmp_path / "pred" / f"{case}.nii.gz", pred)


def test_mbhseg_convention_scores_cases_by_present_classes_and_healthy_cases_by_false_positives(tmp_path):
    _mbhseg_cases(tmp_path)
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", [1, 2], progress=False, convention=convention("mbhseg"))
    score = summary["case_score"]
    assert score["per_case"]["lesion"] == pytest.approx(2 / 3)  # class 2 (predicted, not in the reference) ignored
    assert score["per_case"]["healthy_fp20"] == pytest.approx(2 * 80 / 180)  # 2(T - x)/(2T - x), T = 100, x = 20
    assert score["per_case"]["healthy_fp150"] == 0.0  # x > T
    assert score["mean"] == pytest.approx((2 / 3 + 160 / 180 + 0.0) / 3) and score["n_healthy"] == 2
    assert score["fp_threshold_voxels"] == 100 and summary["convention"] == "mbhseg"
    assert math.isnan(summary["per_case"]["lesion"]["2"]["dice"])  # prediction only: ignored, not a miss
    assert summary["per_case"]["healthy_fp20"]["2"]["prediction_voxels"] == 20
    nnunet = evaluate_folders(tmp_path / "ref", tmp_path / "pred", [1, 2], progress=False)
    assert nnunet["per_case"]["lesion"]["2"]["dice"] == 0.0 and "case_score" not in nnunet  # the default counts it a miss
    assert "mbhseg case score (mean over 3 cases, 2 without foreground)" in format_table(summary, {})


def test_mbhseg_healthy_case_without_false_positive_scores_one(tmp_path):
    empty = np.zeros((2, 4, 4), np.uint8)
    for folder in ("ref", "pred"):
        write_volume(tmp_path / folder / "clean.nii.gz", empty)
    summary = evaluate_folders(tmp_path / "ref", tmp_path / "pred", [1], progress=False, convention=convention("mbhseg"))
    assert summary["case_score"]["per_case"] == {"clean": 1.0} and math.isnan(summary["mean"]["dice"])
