import csv
import math

import numpy as np
import pytest

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
