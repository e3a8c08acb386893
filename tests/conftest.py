"""Shared fixtures: small generated datasets in the raw format and isolated SSS_* roots."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from sss_auto.dataset.demo import DemoSpec, make_demo_dataset
from sss_auto.io.nifti import Geometry, write_image

# memory estimates are remembered per test session, never in the user's ~/.cache (planners/batch_fit.py)
os.environ["SSS_CACHE_DIR"] = tempfile.mkdtemp(prefix="sss_test_cache_")

SMALL = DemoSpec(n_labeled=3, n_unlabeled=2, n_test=1, shape=(8, 48, 48), seed=3)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """A small demo dataset, written once per session; copy it before changing anything."""
    return make_demo_dataset(tmp_path_factory.mktemp("template") / "Dataset900_DemoBHSD", SMALL)


ROOT_VARIABLES = {"raw": "SSS_raw", "preprocessed": "SSS_preprocessed", "results": "SSS_results"}


def trained_template(base: Path, demo: Path, commands: list[list[str]]) -> Path:
    """Roots (raw/, preprocessed/, results/) in which `commands` ran once on a copy of `demo`, with no SAM-2 weights.

    Session fixtures build one with it, so tests that only read a trained run do not each train it;
    `copy_trained` puts a copy into a test's own roots.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("SSS_SAM2_CHECKPOINT", "nnUNet_raw", "nnUNet_preprocessed")}
    for name, variable in ROOT_VARIABLES.items():
        (base / name).mkdir(parents=True)
        env[variable] = str(base / name)
    (base / "sam2_checkpoints").mkdir()
    env["SSS_SAM2_DIR"] = str(base / "sam2_checkpoints")
    shutil.copytree(demo, base / "raw" / demo.name)
    for command in commands:
        result = run_command(command, env)
        assert result.returncode == 0, f"{' '.join(command)}: {result.stderr[-2000:]}"
    return base


def copy_trained(template: Path, roots: dict[str, Path]) -> dict:
    """Copy a trained template's preprocessed and results folders into the test's roots; the test's environment."""
    for name in ("preprocessed", "results"):
        shutil.copytree(template / name, roots[name], dirs_exist_ok=True)
    return dict(os.environ)


QUICK_TRAIN = ["--epochs", "1", "--iters-per-epoch", "2", "--batch-size", "2", "--supervised-only", "--num-workers", "0",
               "--no-progress", "--disable-val-tta", "--save-probabilities"]
TWO_RUNS = {"SSS-supervised": [], "SSS-supervised-noPCSW-noRefine": ["--no-pcsw", "--no-refine"]}


@pytest.fixture(scope="session")
def two_runs_two_folds(tmp_path_factory, demo_template) -> Path:
    """The demo planned (test SAM-2) and two supervised runs (TWO_RUNS) trained on folds 0 and 1 for a few
    iterations with validation probabilities: what sss_find_best_configuration and sss_ensemble read."""
    commands = [["sss_plan_and_preprocess", "-d", "900", "--sam2-variant", "test", "--no-progress"]]
    commands += [["sss_train", "900", "2d", fold, *QUICK_TRAIN, *flags] for flags in TWO_RUNS.values() for fold in ("0", "1")]
    return trained_template(tmp_path_factory.mktemp("two_runs"), demo_template, commands)


@pytest.fixture
def roots(tmp_path, monkeypatch) -> dict[str, Path]:
    """Fresh SSS_raw / SSS_preprocessed / SSS_results folders and an empty SAM-2 checkpoint folder for one test."""
    folders = {name: tmp_path / name for name in ROOT_VARIABLES}
    for name, folder in folders.items():
        folder.mkdir()
        monkeypatch.setenv(ROOT_VARIABLES[name], str(folder))
    # no SAM-2 weights unless a test puts them there: the planner and sss_train look in these places
    folders["sam2"] = tmp_path / "sam2_checkpoints"
    folders["sam2"].mkdir()
    monkeypatch.setenv("SSS_SAM2_DIR", str(folders["sam2"]))
    monkeypatch.delenv("SSS_SAM2_CHECKPOINT", raising=False)
    return folders


@pytest.fixture
def dataset_dir(demo_template, roots) -> Path:
    """A writable copy of the small demo dataset inside SSS_raw."""
    target = roots["raw"] / demo_template.name
    shutil.copytree(demo_template, target)
    return target


@pytest.fixture
def cache_folder(dataset_dir, roots) -> Path:
    """The small demo dataset planned (test SAM-2) and preprocessed into SSS_preprocessed/2d."""
    from planners.fingerprint import extract_fingerprint
    from planners.planner import plan
    from planners.target import PlanTarget
    from preprocessing.runner import preprocess_dataset
    from sss_auto.dataset.integrity import check_dataset_structure
    from sss_auto.dataset.raw import load_dataset

    dataset = load_dataset(dataset_dir)
    plans = plan(extract_fingerprint(dataset, 1, False), PlanTarget("cuda", 8.0), "test")
    subsets = check_dataset_structure(dataset)
    folder = roots["preprocessed"] / "2d"
    preprocess_dataset(subsets["labeled"] + subsets["unlabeled"], plans, "2d", folder, 1, False)
    return folder


def write_volume(path: Path, array: np.ndarray, spacing=(3.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                 direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)) -> None:
    """Write a (z, y, x) array as an image with the given geometry."""
    write_image(array, Geometry(tuple(array.shape), tuple(spacing), tuple(origin), tuple(direction)), path)


def _bhsd_volume(path, array, spacing=(5.0, 0.5, 0.5)):
    write_volume(path, array, spacing, (-90.0, -110.0, 12.5))


def _release(root, n_labeled=6, n_unlabeled=3, official=True):
    """A tiny BHSD release tree: label_192/{images,ground truths}, unlabel_2000/{anybleed,nobleed}, dataset.json."""
    rng = np.random.default_rng(0)
    images, truths = root / "label_192" / "images", root / "label_192" / "ground truths"
    images.mkdir(parents=True)
    truths.mkdir(parents=True)
    names = [f"ID_{i:08x}_ID_{i:010x}" for i in range(n_labeled)]
    for i, name in enumerate(names):
        _bhsd_volume(images / f"{name}.nii.gz", rng.normal(40, 10, (4, 16, 16)).astype(np.float32))
        label = np.zeros((4, 16, 16), np.int16)
        label[1:3, 4:10, 4:10] = 2  # IPH everywhere
        if i % 2:
            label[2, 12:14, 12:14] = 3
        if i == 0:
            label[1, 0:2, 0:2] = 1  # EDH once
        _bhsd_volume(truths / f"{name}.nii.gz", label)
    for j in range(n_unlabeled):
        folder = root / "unlabel_2000" / ("anybleed" if j % 2 else "nobleed")
        folder.mkdir(parents=True, exist_ok=True)
        _bhsd_volume(folder / f"ID_u{j:07x}_ID_{j:010x}.nii.gz", rng.normal(40, 10, (4, 16, 16)).astype(np.float32))
    if official:
        (root / "dataset.json").write_text(json.dumps({
            "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names[:4]],
            "test": [f"./imagesTs/{n}.nii.gz" for n in names[4:]]}))
    return names


@pytest.fixture
def bhsd_release():
    """Build a tiny BHSD release tree in a folder: bhsd_release(root, n_labeled=6, n_unlabeled=3, official=True)."""
    return _release


@pytest.fixture
def write_volume_geometry():
    """write_volume with BHSD-like thick slices: (path, array, spacing=(5, 0.5, 0.5))."""
    return _bhsd_volume


def kill_9_when(args, env, condition, timeout=300.0) -> bool:
    """Start `args` in its own process group and kill -9 the whole group while `condition()` holds.

    When the condition is seen, the group is first stopped (SIGSTOP) and the condition checked again, so
    the state it describes (a temporary file being written, say) is still there when the group dies; if it
    passed in between, the group continues and the watch goes on.
    """
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            os.killpg(process.pid, signal.SIGSTOP)
            time.sleep(0.05)  # every process of the group has stopped
            if condition():
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return True
            os.killpg(process.pid, signal.SIGCONT)
        time.sleep(0.002)
    process.kill()
    process.wait()
    return False


def run_command(args: list[str], env: dict, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run a command (usually an installed entry point) with text output captured."""
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture
def prepared(roots, dataset_dir) -> tuple[dict, Path]:
    """The small demo dataset planned (test SAM-2) and preprocessed through the CLI: (environment, results folder)."""
    env = dict(os.environ)
    result = run_command(["sss_plan_and_preprocess", "-d", "DemoBHSD", "--sam2-variant", "test", "--method", "full", "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    return env, roots["results"] / "Dataset900_DemoBHSD"


def installed_script(name: str) -> str:
    """Path of an installed console script (torchrun needs a file to run)."""
    path = shutil.which(name)
    assert path, f"{name} is not installed"
    return path


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # for the report's headless-browser checks


def headless_dom(page) -> str:
    """The page's DOM after loading (and its scripts) in headless Chromium."""
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                             "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
