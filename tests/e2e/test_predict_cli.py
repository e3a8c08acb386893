"""Train a tiny model, then sss_predict, sss_evaluate and sss_summarize through their entry points."""

import json
import os
import shutil
import subprocess

import pytest

from sss_auto.io.nifti import read_header


def _run(args, env):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def trained(roots, dataset_dir):
    env = dict(os.environ)
    for command in (["sss_plan_and_preprocess", "-d", "DemoBHSD", "--sam2-variant", "test", "--no-progress"],
                    ["sss_train", "DemoBHSD", "2d", "0", "--epochs", "1", "--iters-per-epoch", "2", "--warmup-epochs", "0",
                     "--batch-size", "2", "--num-workers", "0", "--no-progress", "--disable-val-tta"]):
        result = _run(command, env)
        assert result.returncode == 0, result.stderr
    return env


def test_predict_evaluate_summarize(trained, dataset_dir, tmp_path):
    env = trained
    source = tmp_path / "input"
    shutil.copytree(dataset_dir / "imagesTs", source)
    (source / "broken_0000.nii.gz").write_bytes(b"not a nifti file")
    out = tmp_path / "pred"
    result = _run(["sss_predict", "-i", str(source), "-o", str(out), "--disable-tta", "--save-probabilities",
                   "--no-progress", "-np", "1"], env)
    assert result.returncode == 2, result.stderr
    assert "broken_0000.nii.gz" in result.stdout + result.stderr
    assert "done: 1 predicted, 0 skipped, 1 failed" in result.stdout
    assert read_header(out / "test_000.nii.gz") == read_header(source / "test_000_0000.nii.gz")
    assert (out / "test_000_probabilities.npz").is_file()
    assert not (out / "broken.nii.gz").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary file left"
    info = json.loads((out / "prediction_info.json").read_text())
    assert info["predicted"] == ["test_000"] and "broken" in info["failed"]

    (source / "broken_0000.nii.gz").unlink()
    again = _run(["sss_predict", "-i", str(source), "-o", str(out), "--continue", "--no-progress", "-np", "0"], env)
    assert again.returncode == 0, again.stderr
    assert "0 predicted, 1 skipped" in again.stdout

    same = _run(["sss_predict", "-i", str(source), "-o", str(source / "sub")], env)
    assert same.returncode == 2 and "must not be" in same.stderr

    evaluated = _run(["sss_evaluate", "-ref", str(dataset_dir / "labelsTs"), "-pred", str(out), "-d", "DemoBHSD",
                      "--no-progress"], env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "IPH" in evaluated.stdout and "hd95_mm" in evaluated.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == 1 and set(summary["mean_per_class"]) == {"1", "2", "3"}

    summarized = _run(["sss_summarize", "-d", "DemoBHSD"], env)
    assert summarized.returncode == 0, summarized.stderr
    assert "best: SSS__2d" in summarized.stdout


def test_predict_without_a_trained_model_lists_what_exists(roots, tmp_path):
    (tmp_path / "in").mkdir()
    result = _run(["sss_predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")], dict(os.environ))
    assert result.returncode == 2 and "no trained model" in result.stderr
