"""sss_make_demo and sss_plan_and_preprocess through their installed entry points."""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

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
    assert "default 8 GiB" in result.stderr  # says what it planned for without a GPU
    assert len(list((folder / "2d").glob("*.json"))) == 5
    again = run_command(["sss_preprocess", "-d", "900", "--no-progress"], env)
    assert again.returncode == 0 and "0 case(s) preprocessed, 5 already done" in again.stderr


def test_bad_dataset_exits_2_naming_the_file_and_writes_nothing(dataset_dir, roots, env):
    (dataset_dir / "labelsTr" / "demo_001.nii.gz").unlink()
    result = run_command(["sss_plan_and_preprocess", "-d", "900", "--sam2-variant", "test"], env)
    assert result.returncode == 2
    assert "error:" in result.stderr and "demo_001.nii.gz" in result.stderr and "Traceback" not in result.stderr
    assert not (roots["preprocessed"] / "Dataset900_DemoBHSD" / "fingerprint.json").exists()
    assert not (roots["preprocessed"] / "Dataset900_DemoBHSD" / "plans.json").exists()


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
