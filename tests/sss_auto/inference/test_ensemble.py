"""Ensembles of prediction folders: averaged probabilities, clear errors for folders that do not match."""

import numpy as np
import pytest

from sss_auto.errors import SSSError
from sss_auto.inference.ensemble import common_cases, ensemble_folders
from sss_auto.inference.export import probabilities_path, write_probabilities
from sss_auto.io.nifti import read_header, read_image
from sss_auto.postprocessing.components import ClassRule
from tests.conftest import write_volume


def _prediction(folder, case_id, probabilities, spacing=(5.0, 1.0, 1.0)):
    label = folder / f"{case_id}.nii.gz"
    write_volume(label, probabilities.argmax(0).astype(np.uint8), spacing=spacing)
    write_probabilities(probabilities_path(label), probabilities, spacing)


def _one_hot(labels, classes=3, confidence=0.6):
    out = np.full((classes,) + labels.shape, (1 - confidence) / (classes - 1), np.float32)
    for k in range(classes):
        out[k][labels == k] = confidence
    return out


def test_ensemble_averages_probabilities_and_keeps_the_geometry(tmp_path):
    a, b = np.zeros((2, 4, 4), np.int64), np.zeros((2, 4, 4), np.int64)
    a[0, :2, :2], b[0, :2, :2] = 1, 2  # disagree on these voxels: a says 1 at 0.6, b says 2 at 0.9
    a[1, 3, 3], b[1, 3, 3] = 2, 2  # agree
    _prediction(tmp_path / "A", "case", _one_hot(a))
    _prediction(tmp_path / "B", "case", _one_hot(b, confidence=0.9))
    cases = ensemble_folders([tmp_path / "A", tmp_path / "B"], tmp_path / "out", progress=False, save_probabilities=True)
    assert cases == ["case"]
    label, _ = read_image(tmp_path / "out" / "case.nii.gz")
    assert (label[0, :2, :2] == 2).all() and label[1, 3, 3] == 2 and (label[0, 2:] == 0).all()
    assert read_header(tmp_path / "out" / "case.nii.gz") == read_header(tmp_path / "A" / "case.nii.gz")
    mean = np.load(tmp_path / "out" / "case_probabilities.npz")["probabilities"].astype(np.float32)
    np.testing.assert_allclose(mean[2, 0, 0, 0], (0.2 + 0.9) / 2, atol=1e-3)


def test_ensemble_applies_postprocessing_rules(tmp_path):
    labels = np.zeros((1, 6, 6), np.int64)
    labels[0, 0, 0], labels[0, 3:6, 3:6] = 1, 1  # a stray voxel and a 9-voxel component
    for name in ("A", "B"):
        _prediction(tmp_path / name, "case", _one_hot(labels))
    ensemble_folders([tmp_path / "A", tmp_path / "B"], tmp_path / "out", {1: ClassRule(keep_largest=True)}, progress=False)
    label, _ = read_image(tmp_path / "out" / "case.nii.gz")
    assert label[0, 0, 0] == 0 and label[0, 3:6, 3:6].sum() == 9


def test_folders_that_do_not_match_are_refused_by_file(tmp_path):
    labels = np.zeros((2, 4, 4), np.int64)
    _prediction(tmp_path / "A", "x", _one_hot(labels))
    _prediction(tmp_path / "A", "y", _one_hot(labels))
    _prediction(tmp_path / "B", "x", _one_hot(labels))
    with pytest.raises(SSSError, match=r"B/y_probabilities.npz: missing \(1 case"):
        common_cases([tmp_path / "A", tmp_path / "B"])
    with pytest.raises(SSSError, match="at least two"):
        common_cases([tmp_path / "A"])
    (tmp_path / "C").mkdir()
    write_volume(tmp_path / "C" / "x.nii.gz", labels.astype(np.uint8))
    with pytest.raises(SSSError, match="C: no <case>_probabilities.npz.*--save-probabilities"):
        common_cases([tmp_path / "A", tmp_path / "C"])
    _prediction(tmp_path / "D", "x", _one_hot(np.zeros((3, 4, 4), np.int64)))
    with pytest.raises(SSSError, match="D/x_probabilities.npz: shape"):
        ensemble_folders([tmp_path / "B", tmp_path / "D"], tmp_path / "out", progress=False)
    with pytest.raises(SSSError, match="must not be one of its inputs"):
        ensemble_folders([tmp_path / "A", tmp_path / "B"], tmp_path / "A", progress=False)


def test_nan_probabilities_are_refused(tmp_path):
    labels = np.zeros((1, 4, 4), np.int64)
    _prediction(tmp_path / "A", "x", _one_hot(labels))
    bad = _one_hot(labels)
    bad[0, 0, 0, 0] = np.nan
    _prediction(tmp_path / "B", "x", bad)
    with pytest.raises(SSSError, match="B/x_probabilities.npz: holds NaN"):
        ensemble_folders([tmp_path / "A", tmp_path / "B"], tmp_path / "out", progress=False)
