"""The voxel confusion of saved benchmark predictions: counts, shares, and the script on a tiny folder."""

import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import prediction_confusion  # noqa: E402
from ssl_benchmark import DATASET_FOLDER  # noqa: E402


def test_counts_rows_are_the_true_class_and_shares_give_recall_rows_and_precision():
    truth = np.array([[0, 0, 1, 1, 2, 2]])
    prediction = np.array([[0, 1, 1, 2, 2, 2]])
    counts = prediction_confusion.confusion_counts([(truth, prediction), (truth, truth)], 3)
    assert counts.tolist() == [[3, 1, 0], [0, 3, 1], [0, 0, 4]]
    recall, precision = prediction_confusion.shares(counts)
    np.testing.assert_allclose(recall[1], [0.0, 0.75, 0.25])
    np.testing.assert_allclose(precision, [1.0, 0.75, 0.8])


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.uint8)), str(path))


def test_the_script_pools_every_seed_with_predictions_and_writes_json(tmp_path, capsys):
    pool = tmp_path / "pool" / DATASET_FOLDER
    pool.mkdir(parents=True)
    (pool / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "IPH": 1, "IVH": 2}}))
    truth = np.zeros((2, 4, 4))
    truth[0, :2] = 1
    truth[1, :2] = 2
    _write(pool / "labelsTs" / "test_000.nii.gz", truth)
    swapped = np.where(truth == 1, 2, truth)  # seed 0 calls all IPH IVH, seed 1 is right
    _write(tmp_path / "seed_0" / "predictions" / "w2s_budget10min" / "test_000.nii.gz", swapped)
    _write(tmp_path / "seed_1" / "predictions" / "w2s_budget10min" / "test_000.nii.gz", truth)
    assert prediction_confusion.main(["--out", str(tmp_path), "w2s"]) == 0
    saved = json.loads((tmp_path / "confusion.json").read_text())["w2s"]
    assert saved["seeds"] == [0, 1] and saved["classes"] == ["background", "IPH", "IVH"]
    assert saved["counts"][1] == [0, 8, 8] and saved["counts"][2] == [0, 0, 16]
    assert "| IPH | 0.000 | 0.500 | 0.500 |" in capsys.readouterr().out
