"""Shared fixtures: small generated datasets in the raw format and isolated SSS_* roots."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sss_auto.dataset.demo import DemoSpec, make_demo_dataset
from sss_auto.io.nifti import Geometry, write_image

SMALL = DemoSpec(n_labeled=3, n_unlabeled=2, n_test=1, shape=(8, 48, 48), seed=3)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """A small demo dataset, written once per session; copy it before changing anything."""
    return make_demo_dataset(tmp_path_factory.mktemp("template") / "Dataset900_DemoBHSD", SMALL)


@pytest.fixture
def roots(tmp_path, monkeypatch) -> dict[str, Path]:
    """Fresh SSS_raw / SSS_preprocessed / SSS_results folders for one test."""
    folders = {name: tmp_path / name for name in ("raw", "preprocessed", "results")}
    for name, folder in folders.items():
        folder.mkdir()
        monkeypatch.setenv({"raw": "SSS_raw", "preprocessed": "SSS_preprocessed", "results": "SSS_results"}[name], str(folder))
    return folders


@pytest.fixture
def dataset_dir(demo_template, roots) -> Path:
    """A writable copy of the small demo dataset inside SSS_raw."""
    target = roots["raw"] / demo_template.name
    shutil.copytree(demo_template, target)
    return target


def write_volume(path: Path, array: np.ndarray, spacing=(3.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                 direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)) -> None:
    """Write a (z, y, x) array as an image with the given geometry."""
    write_image(array, Geometry(tuple(array.shape), tuple(spacing), tuple(origin), tuple(direction)), path)
