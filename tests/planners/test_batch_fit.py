"""Memory estimates remembered between planning runs (planners/batch_fit.py)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from planners import batch_fit
from planners.batch_fit import GIB, estimate_cache_file, fit_batch, step_estimates
from planners.fingerprint import extract_fingerprint
from planners.memory import measure_step_estimates
from planners.planner import plan
from planners.target import PlanTarget
from sss_auto.dataset.raw import load_dataset
from sss_auto.networks.config import ModelConfig

REPO = Path(__file__).resolve().parents[2]
CONFIG = ModelConfig(1, 4, 64, "test", "hiera", False, ())


def _entries(path: Path) -> int:
    return len(json.loads(path.read_text())["estimates"])


def test_estimates_are_remembered_and_a_second_run_plans_without_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("SSS_CACHE_DIR", str(tmp_path))
    measured = measure_step_estimates(CONFIG, (1, 2))
    assert not estimate_cache_file().exists()
    first = fit_batch(CONFIG, 2 * GIB, 4)
    assert estimate_cache_file() == tmp_path / "memory_estimates.json" and _entries(estimate_cache_file()) == 2
    assert step_estimates(CONFIG, (1, 2)) == measured, "remembered estimates equal measured ones"
    script = ("import sys; from planners.batch_fit import fit_batch, GIB; from sss_auto.networks.config import ModelConfig; "
              "b, e = fit_batch(ModelConfig(1, 4, 64, 'test', 'hiera', False, ()), 2 * GIB, 4); "
              "print(b, e.total_bytes, 'torch' in sys.modules, 'sam2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "SSS_CACHE_DIR": str(tmp_path)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(first[0]), str(first[1].total_bytes), "False", "False"]


def test_changed_code_or_an_unreadable_cache_is_measured_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SSS_CACHE_DIR", str(tmp_path))
    step_estimates(CONFIG, (1,))
    monkeypatch.setattr(batch_fit, "code_digest", lambda: "other code")
    step_estimates(CONFIG, (1,))
    assert _entries(estimate_cache_file()) == 2, "an estimate of other code is a new entry, never reused"
    estimate_cache_file().write_text("{truncated")
    with caplog.at_level(logging.WARNING):
        again = step_estimates(CONFIG, (1,))
    assert "unreadable memory-estimate cache" in caplog.text and str(estimate_cache_file()) in caplog.text
    assert again == measure_step_estimates(CONFIG, (1,)) and _entries(estimate_cache_file()) == 1


def test_the_code_digest_covers_the_network_and_the_step():
    covered = {str(p) for p in batch_fit.ESTIMATE_CODE}
    assert {"sss_auto/networks", "sss_auto/method", "planners/memory.py"} <= covered
    assert all((REPO / p).exists() for p in covered)


def test_plans_are_the_same_with_remembered_and_fresh_estimates(dataset_dir, tmp_path, monkeypatch):
    fingerprint = extract_fingerprint(load_dataset(dataset_dir), num_processes=1, progress=False)
    target = PlanTarget("cuda", 3.0, {}, "test")
    monkeypatch.setenv("SSS_CACHE_DIR", str(tmp_path / "fresh"))
    fresh = plan(fingerprint, target, "test")
    remembered = plan(fingerprint, target, "test")
    monkeypatch.setenv("SSS_CACHE_DIR", str(tmp_path / "other"))
    assert plan(fingerprint, target, "test") == fresh == remembered


def test_a_batch_capped_at_one_is_fitted_from_one_estimate_with_the_two_estimate_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("SSS_CACHE_DIR", str(tmp_path))
    one, two = measure_step_estimates(CONFIG, (1, 2))
    asked = []

    def counting(config, batches, *rest):
        asked.append(batches)
        return [{1: one, 2: two}[b] for b in batches]

    monkeypatch.setattr("planners.memory.measure_step_estimates", counting)  # batch_fit imports it when needed
    for budget in (one.total_bytes + 1, one.total_bytes):
        assert fit_batch(CONFIG, budget, 1) == ((1, one) if budget > one.total_bytes else (0, one))
    assert asked == [(1,)], "batch 1 alone, measured once, then remembered"
    (tmp_path / "memory_estimates.json").unlink()
    two_estimate_answers = [fit_batch(CONFIG, budget, 2)[0] for budget in (one.total_bytes + 1, one.total_bytes)]
    assert [min(b, 1) for b in two_estimate_answers] == [1, 0]
