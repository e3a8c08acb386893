"""sss_make_demo and sss_plan_and_preprocess through their installed entry points."""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import SimpleITK as sitk

from tests.conftest import run_command


@pytest.fixture
def env(roots):
    return dict(os.environ)


def test_make_demo_then_plan_and_preprocess(roots, env):
    made = run_command(["sss_make_demo", "--labeled", "3", "--unlabeled", "2", "--test", "1"], env)
    assert made.returncode == 0, made.stderr
    result = run_command(["sss_plan_and_preprocess", "-d", "DemoBHSD", "--sam2-variant", "test", "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    folder = roots["preprocessed"] / "Dataset900_DemoBHSD"
    plans = json.loads((folder / "plans.json").read_text())
    assert plans["configurations"]["2d"]["sam2_variant"] == "test"
    assert "planning for training on this CPU" in result.stderr  # says what it planned for without a GPU
    assert "NOT PRETRAINED" in result.stderr and plans["configurations"]["2d"]["pretrained"] is False
    assert len(list((folder / "2d").glob("*.json"))) == 5
    again = run_command(["sss_preprocess", "-d", "900", "--no-progress"], env)
    assert again.returncode == 0 and "0 case(s) preprocessed, 5 already done" in again.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the plan without CUDA")
def test_plan_follows_the_weights_that_exist_and_train_refuses_a_plan_for_missing_weights(dataset_dir, roots, env):
    plan = ["sss_plan", "-d", "900", "--no-progress"]
    result = run_command(plan, env)
    assert result.returncode == 0, result.stderr
    plans_path = roots["preprocessed"] / "Dataset900_DemoBHSD" / "plans.json"
    scratch = json.loads(plans_path.read_text())["configurations"]["2d"]
    assert (scratch["device"], scratch["pretrained"], scratch["sam2_variant"]) == ("cpu", False, "test")
    assert scratch["training"]["learning_rate"] == 1e-3 and scratch["training"]["time_budget_min"] == 60
    assert scratch["batch_size_labeled"] <= 4 and "from scratch" in scratch["weights_note"]
    assert (scratch["refine"], scratch["dfe_levels"]) == (False, []), "the benchmark's best from-scratch variant"
    assert "NOT PRETRAINED" in result.stderr and str(roots["sam2"]) in result.stderr, "says where it looked"

    weights = roots["sam2"] / "sam2.1_hiera_tiny.pt"
    weights.write_bytes(b"only its name matters to the planner")
    result = run_command(plan + ["--gpu-memory-gb", "8"], env)
    assert result.returncode == 0, result.stderr
    pretrained = json.loads(plans_path.read_text())["configurations"]["2d"]
    assert (pretrained["device"], pretrained["pretrained"], pretrained["sam2_variant"]) == ("cuda", True, "tiny")
    assert pretrained["sam2_checkpoint"] == str(weights) and pretrained["training"]["learning_rate"] == 1e-4
    assert pretrained["refine"] is True and pretrained["dfe_levels"] == [1, 2]

    weights.unlink()
    assert run_command(["sss_preprocess", "-d", "900", "--no-progress"], env).returncode == 0
    refused = run_command(["sss_train", "900", "2d", "0", "--epochs", "1", "--no-progress"], env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "made for pretrained SAM-2 tiny weights" in refused.stderr and "sss_download_sam2 --variant tiny" in refused.stderr


def test_bad_dataset_exits_2_naming_the_file_and_writes_nothing(dataset_dir, roots, env):
    (dataset_dir / "labelsTr" / "demo_001.nii.gz").unlink()
    result = run_command(["sss_plan_and_preprocess", "-d", "900", "--sam2-variant", "test"], env)
    assert result.returncode == 2
    assert "error:" in result.stderr and "demo_001.nii.gz" in result.stderr and "Traceback" not in result.stderr
    assert not (roots["preprocessed"] / "Dataset900_DemoBHSD" / "fingerprint.json").exists()
    assert not (roots["preprocessed"] / "Dataset900_DemoBHSD" / "plans.json").exists()


def test_a_nan_voxel_that_simpleitk_hides_is_refused_naming_the_file(dataset_dir, roots, env):
    path = dataset_dir / "imagesUnlabeled" / "unl_001_0000.nii.gz"
    image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(image)
    values[2, 3, 4] = np.nan  # written as NaN by SimpleITK, read back by SimpleITK as 0
    broken = sitk.GetImageFromArray(values)
    broken.CopyInformation(image)
    sitk.WriteImage(broken, str(path))
    result = run_command(["sss_plan_and_preprocess", "-d", "900", "--sam2-variant", "test", "--no-progress"], env)
    assert result.returncode == 2, result.stderr
    assert "unl_001_0000.nii.gz: 1 NaN/Inf voxel(s)" in result.stderr and "Traceback" not in result.stderr
    assert not (roots["preprocessed"] / "Dataset900_DemoBHSD" / "plans.json").exists()
    assert not list((roots["preprocessed"] / "Dataset900_DemoBHSD").rglob("unl_001*"))


def test_unknown_dataset_lists_existing_ones(dataset_dir, env):
    result = run_command(["sss_plan_and_preprocess", "-d", "ACDC"], env)
    assert result.returncode == 2 and "Dataset900_DemoBHSD" in result.stderr


@pytest.mark.slow
def test_kill_9_during_preprocessing_then_rerun_gives_identical_cache(roots, env):
    assert run_command(["sss_make_demo", "--labeled", "4", "--unlabeled", "8", "--test", "0"], env).returncode == 0
    assert run_command(["sss_plan", "-d", "900", "--sam2-variant", "test", "--no-progress"], env).returncode == 0
    folder = roots["preprocessed"] / "Dataset900_DemoBHSD" / "2d"
    process = subprocess.Popen(["sss_preprocess", "-d", "900", "-np", "1", "--no-progress"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 0 < len(list(folder.glob("*.json"))) < 12
    resumed = run_command(["sss_preprocess", "-d", "900", "--no-progress"], env)
    assert resumed.returncode == 0, resumed.stderr
    reference = roots["preprocessed"] / "reference"
    shutil.copytree(folder, reference)
    shutil.rmtree(folder)
    assert run_command(["sss_preprocess", "-d", "900", "--no-progress"], env).returncode == 0
    for path in sorted(reference.glob("*.npy")):
        np.testing.assert_array_equal(np.load(path), np.load(folder / path.name))
    assert not list(folder.glob(".*"))
