import numpy as np
import pytest

from planners.fingerprint import extract_fingerprint
from planners.planner import plan
from planners.target import PlanTarget
from preprocessing.runner import load_cache_entry, load_cached_array, preprocess_dataset
from sss_auto.dataset.raw import load_dataset
from sss_auto.errors import CacheError


@pytest.fixture
def setup(dataset_dir, tmp_path):
    dataset = load_dataset(dataset_dir)
    plans = plan(extract_fingerprint(dataset, 1, progress=False), PlanTarget("cuda", 2.0), "test")
    cases = dataset.cases("labeled") + dataset.cases("unlabeled")
    return cases, plans, tmp_path / "cache"


def test_rerun_skips_finished_cases_and_redoes_broken_ones(setup):
    cases, plans, folder = setup
    assert preprocess_dataset(cases, plans, "2d", folder, 2, progress=False) == (5, 0)
    assert preprocess_dataset(cases, plans, "2d", folder, 1, progress=False) == (0, 5)
    (folder / "demo_001.json").unlink()  # as if killed before the JSON was written
    (folder / ".demo_002.npy.abc.tmp.npy").write_bytes(b"half")  # a killed write's temporary
    with open(folder / "demo_000.npy", "ab") as handle:  # size no longer matches the record
        handle.write(b"junk")
    assert preprocess_dataset(cases, plans, "2d", folder, 1, progress=False) == (2, 3)
    assert not list(folder.glob(".*tmp*"))


def test_unlabeled_cases_have_no_label_and_labeled_ones_do(setup):
    cases, plans, folder = setup
    preprocess_dataset(cases, plans, "2d", folder, 1, progress=False)
    assert "seg" in load_cache_entry(folder / "demo_000.json").arrays
    entry = load_cache_entry(folder / "unl_000.json")
    assert entry.subset == "unlabeled" and "seg" not in entry.arrays
    data = load_cached_array(folder, entry, "data")
    assert data.dtype == np.float32 and data.ndim == 4


def test_altered_cache_file_is_detected_not_loaded(setup):
    cases, plans, folder = setup
    preprocess_dataset(cases, plans, "2d", folder, 1, progress=False)
    entry = load_cache_entry(folder / "demo_000.json")
    raw = bytearray((folder / "demo_000.npy").read_bytes())
    raw[-3] ^= 0xFF
    (folder / "demo_000.npy").write_bytes(bytes(raw))
    with pytest.raises(CacheError, match="demo_000.npy: content differs"):
        load_cached_array(folder, entry, "data")
