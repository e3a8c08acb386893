"""sss_evaluate through its entry point on hand-made volumes: conventions, the files written, bad input."""

import json
import os

import numpy as np

from tests.conftest import run_command, write_volume


def _pair(tmp_path):
    reference, prediction = np.zeros((4, 6, 6), np.uint8), np.zeros((4, 6, 6), np.uint8)
    reference[1:3, 1:4, 1:4] = 1
    prediction[1:3, 2:5, 1:4] = 1
    for folder, array in (("ref", reference), ("pred", prediction)):
        write_volume(tmp_path / folder / "case_a.nii.gz", array, spacing=(5.0, 2.0, 1.0))


def test_ssl4mis_convention_is_named_in_the_summary_and_adds_voxel_distances(tmp_path):
    _pair(tmp_path)
    target = tmp_path / "ssl4mis.json"
    result = run_command(["sss_evaluate", "-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"),
                          "--convention", "ssl4mis", "-o", str(target), "--no-progress"], dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "convention ssl4mis" in result.stdout and "hd95_vox" in result.stdout
    summary = json.loads(target.read_text())
    assert summary["convention"] == "ssl4mis" and "medpy" in summary["conventions"]
    assert summary["mean"]["dice"] == 2 * 12 / 36  # 12 of 18 voxels overlap
    assert summary["mean"]["hd95_mm"] == 2 * summary["mean"]["hd95_vox"]  # the shift is along y (2 mm voxels)
    assert (tmp_path / "ssl4mis_per_case.csv").read_text().splitlines()[0].endswith("hd95_vox,asd_vox,reference_ml,prediction_ml")


def test_default_convention_is_nnunet_and_an_unknown_one_exits_2(tmp_path):
    _pair(tmp_path)
    default = run_command(["sss_evaluate", "-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "--no-progress"], dict(os.environ))
    assert default.returncode == 0, default.stderr
    assert json.loads((tmp_path / "pred" / "summary.json").read_text())["convention"] == "nnunet"
    unknown = run_command(["sss_evaluate", "-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"),
                           "--convention", "brats", "-o", str(tmp_path / "x.json")], dict(os.environ))
    assert unknown.returncode == 2 and "invalid choice: 'brats'" in unknown.stderr and not (tmp_path / "x.json").exists()


def test_mbhseg_convention_prints_and_writes_the_case_score(tmp_path):
    _pair(tmp_path)
    healthy = np.zeros((4, 6, 6), np.uint8)
    write_volume(tmp_path / "ref" / "case_b.nii.gz", healthy, spacing=(5.0, 2.0, 1.0))
    healthy[0, 0, :5] = 1  # 5 false-positive voxels in a case without hemorrhage
    write_volume(tmp_path / "pred" / "case_b.nii.gz", healthy, spacing=(5.0, 2.0, 1.0))
    result = run_command(["sss_evaluate", "-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"),
                          "--convention", "mbhseg", "--no-progress"], dict(os.environ))
    assert result.returncode == 0, result.stderr
    score = json.loads((tmp_path / "pred" / "summary.json").read_text())["case_score"]
    assert score["per_case"] == {"case_a": 2 * 12 / 36, "case_b": 2 * 95 / 195}
    assert f"mbhseg case score (mean over 2 cases, 1 without foreground): {score['mean']:.4f}" in result.stdout
