"""Train a tiny model, then sss_predict, sss_evaluate and sss_summarize through their entry points."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sss_auto.io.atomic import TEMPORARY_PATTERN
from sss_auto.io.nifti import read_header, read_image
from tests.conftest import copy_trained, kill_9_when, run_command, trained_template


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, demo_template):
    """Full SSS planned and fold 0 trained for a few iterations, once for this module's tests."""
    return trained_template(tmp_path_factory.mktemp("trained"), demo_template, [
        ["sss_plan_and_preprocess", "-d", "DemoBHSD", "--sam2-variant", "test", "--method", "full", "--no-progress"],
        ["sss_train", "DemoBHSD", "2d", "0", "--epochs", "1", "--iters-per-epoch", "2", "--warmup-epochs", "0",
         "--ssl-start", "warmup", "--batch-size", "2", "--num-workers", "0", "--no-progress", "--disable-val-tta"]])


@pytest.fixture
def trained(trained_once, roots, dataset_dir):
    """A copy of that trained run in this test's own roots; the environment to run commands in."""
    return copy_trained(trained_once, roots)


def test_predict_evaluate_summarize(trained, dataset_dir, tmp_path):
    env = trained
    source = tmp_path / "input"
    shutil.copytree(dataset_dir / "imagesTs", source)
    (source / "broken_0000.nii.gz").write_bytes(b"not a nifti file")
    with_nan = sitk.ReadImage(str(source / "test_000_0000.nii.gz"), sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(with_nan)
    values[1, 2, 3] = np.nan  # SimpleITK writes the NaN and would read it back as 0
    nan_image = sitk.GetImageFromArray(values)
    nan_image.CopyInformation(with_nan)
    sitk.WriteImage(nan_image, str(source / "nan_0000.nii.gz"))
    out = tmp_path / "pred"
    result = run_command(["sss_predict", "-i", str(source), "-o", str(out), "--disable-tta", "--save-probabilities",
                   "--no-progress", "-np", "1"], env)
    assert result.returncode == 2, result.stderr
    assert "broken_0000.nii.gz" in result.stdout + result.stderr
    assert "nan_0000.nii.gz: 1 NaN/Inf voxel(s)" in result.stdout + result.stderr
    assert "done: 1 predicted, 0 skipped, 2 failed" in result.stdout
    assert read_header(out / "test_000.nii.gz") == read_header(source / "test_000_0000.nii.gz")
    assert (out / "test_000_probabilities.npz").is_file()
    assert not (out / "broken.nii.gz").exists() and not (out / "nan.nii.gz").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary file left"
    info = json.loads((out / "prediction_info.json").read_text())
    assert info["predicted"] == ["test_000"] and "broken" in info["failed"] and "nan" in info["failed"]

    (source / "broken_0000.nii.gz").unlink()
    (source / "nan_0000.nii.gz").unlink()
    again = run_command(["sss_predict", "-i", str(source), "-o", str(out), "--continue", "--no-progress", "-np", "0"], env)
    assert again.returncode == 0, again.stderr
    assert "0 predicted, 1 skipped" in again.stdout

    teacher = run_command(["sss_predict", "-i", str(source), "-o", str(tmp_path / "teacher"), "--weights", "teacher",
                           "--coarse-only", "--disable-tta", "--no-progress", "-np", "0", "--verbose"], env)
    assert teacher.returncode == 0, teacher.stderr
    info = json.loads((tmp_path / "teacher" / "prediction_info.json").read_text())
    assert info["weights"] == "teacher" and info["coarse_only"] is True
    assert "pass 2 runs" not in teacher.stderr, "--coarse-only never runs the prompted pass"
    assert read_header(tmp_path / "teacher" / "test_000.nii.gz") == read_header(source / "test_000_0000.nii.gz")

    same = run_command(["sss_predict", "-i", str(source), "-o", str(source / "sub")], env)
    assert same.returncode == 2 and "must not be" in same.stderr

    _check_nnunet_layout(env, source, tmp_path / "nnunet", dataset_dir)

    evaluated = run_command(["sss_evaluate", "-ref", str(dataset_dir / "labelsTs"), "-pred", str(out), "-d", "DemoBHSD",
                      "--no-progress"], env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "IPH" in evaluated.stdout and "hd95_mm" in evaluated.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == 1 and set(summary["mean_per_class"]) == {"1", "2", "3"}
    rows = (out / "per_case.csv").read_text().splitlines()
    assert rows[0].startswith("case,class,class_name,dice") and len(rows) == 1 + 3 and ",IPH," in rows[1]

    summarized = run_command(["sss_summarize", "-d", "DemoBHSD"], env)
    assert summarized.returncode == 0, summarized.stderr
    assert "best: SSS__2d" in summarized.stdout


def _check_nnunet_layout(env, source, out, dataset_dir):
    """--output-format nnunet, read back as nnU-Net's ensembling and evaluator read a prediction folder."""
    result = run_command(["sss_predict", "-i", str(source), "-o", str(out), "--output-format", "nnunet",
                          "--save-probabilities", "--disable-tta", "--no-progress", "-np", "0"], env)
    assert result.returncode == 0, result.stderr
    probabilities = np.load(out / "test_000.npz")["probabilities"]  # nnU-Net's key, float32 (classes, z, y, x)
    label, geometry = read_image(out / "test_000.nii.gz")
    dataset = json.loads((dataset_dir / "dataset.json").read_text())
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(dataset["labels"]),) + label.shape
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-4)
    assert (probabilities.argmax(0) == label).mean() > 0.999  # ties between equal probabilities may differ
    with open(out / "test_000.pkl", "rb") as handle:
        properties = pickle.load(handle)
    image = sitk.ReadImage(str(source / "test_000_0000.nii.gz"))
    assert properties["sitk_stuff"]["spacing"] == pytest.approx(image.GetSpacing())
    assert properties["sitk_stuff"]["origin"] == pytest.approx(image.GetOrigin())
    assert properties["sitk_stuff"]["direction"] == pytest.approx(image.GetDirection())
    assert properties["spacing"] == pytest.approx(list(reversed(image.GetSpacing())))
    written = json.loads((out / "dataset.json").read_text())
    assert written["labels"] == dataset["labels"] and written["file_ending"] == ".nii.gz"
    plans = json.loads((out / "plans.json").read_text())
    assert plans["image_reader_writer"] == "SimpleITKIO" and plans["label_manager"] == "LabelManager"
    assert not (out / "test_000_probabilities.npz").exists()
    assert json.loads((out / "prediction_info.json").read_text())["output_format"] == "nnunet"


def test_predict_without_a_trained_model_lists_what_exists(roots, tmp_path):
    (tmp_path / "in").mkdir()
    result = run_command(["sss_predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")], dict(os.environ))
    assert result.returncode == 2 and "no trained model" in result.stderr


def _several_inputs(dataset_dir, folder):
    folder.mkdir()
    for subset in ("imagesTr", "imagesTs", "imagesUnlabeled"):
        for path in (dataset_dir / subset).glob("*_0000.nii.gz"):
            shutil.copy(path, folder / path.name)
    return sorted(p.name.replace("_0000.nii.gz", ".nii.gz") for p in folder.iterdir())


def _final_outputs(folder):
    return sorted(p.name for p in folder.glob("*.nii.gz") if not p.name.startswith("."))


def _voxels(path):
    return read_image(path)[0]


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live child processes of `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append((int(stat.parent.name), (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return found


@pytest.mark.slow
def test_kill_9_during_prediction_then_continue_gives_the_same_outputs_and_a_dying_worker_is_reported(
        trained, dataset_dir, tmp_path):
    env = trained
    names = _several_inputs(dataset_dir, tmp_path / "input")
    assert len(names) >= 5
    base = ["sss_predict", "-i", str(tmp_path / "input"), "--disable-tta", "--no-progress", "-np", "1"]
    reference = run_command(base + ["-o", str(tmp_path / "reference")], env)
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "interrupted"
    # the main process and its workers, while a NIfTI is being written
    assert kill_9_when(base + ["-o", str(out)], env, lambda: out.is_dir() and any(out.glob(TEMPORARY_PATTERN)))
    assert any(out.glob(TEMPORARY_PATTERN)), "killed while a NIfTI was being written"
    finished = _final_outputs(out)
    assert len(finished) < len(names), "killed before the end"
    for name in finished:  # whatever carries a final name is complete
        np.testing.assert_array_equal(_voxels(out / name), _voxels(tmp_path / "reference" / name))
    resumed = run_command(base + ["-o", str(out), "--continue"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} skipped" in resumed.stdout
    assert _final_outputs(out) == names
    assert not list(out.glob(".*")), "no temporary file remains"
    for name in names:
        np.testing.assert_array_equal(_voxels(out / name), _voxels(tmp_path / "reference" / name))

    process = subprocess.Popen(base + ["-o", str(tmp_path / "worker_dies")], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    workers = []
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not workers:
        workers = [pid for pid, command in _children(process.pid)
                   if "spawn_main" in command and "resource_tracker" not in command]
        time.sleep(0.01)
    assert workers, "the prediction worker started"
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=120)  # reported, not hung
    assert process.returncode == 2, stderr
    assert "prediction worker process died" in stderr and "--continue" in stderr
