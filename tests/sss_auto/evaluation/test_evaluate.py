import csv
import math

import numpy as np
import pytest

from sss_auto.errors import SSSError
from sss_auto.evaluation.conventions import convention
from sss_auto.evaluation.evaluate import evaluate_folders, per_case_csv_path, write_summary
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
    with pytest.raises(SSSError, match="unknown evaluation convention 'mbhseg'.*nnunet, ssl4mis"):
        convention("mbhseg")
