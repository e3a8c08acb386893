"""The planning stages on their own: where they write, what they reuse, which machine they plan for."""

import logging

import pytest

from planners.target import PlanTarget
from sss_auto import stages
from sss_auto.dataset.raw import load_dataset


def test_plan_target_follows_the_given_memory_then_the_detected_gpu_then_the_cpu(monkeypatch, caplog):
    weights = {}
    assert stages.plan_target(12.0, weights) == PlanTarget("cuda", 12.0, weights, "--gpu-memory-gb")
    monkeypatch.setattr(stages, "detect_gpu_memory_gib", lambda: 70.5)
    assert stages.plan_target(None, weights) == PlanTarget("cuda", 70.5, weights, "detected GPU")
    monkeypatch.setattr(stages, "detect_gpu_memory_gib", lambda: None)
    with caplog.at_level(logging.WARNING):
        target = stages.plan_target(None, weights)
    assert (target.device, target.memory_source) == ("cpu", "CPU default")
    assert "no CUDA GPU found" in caplog.text and f"{stages.CPU_TIME_BUDGET_MIN:g}-minute" in caplog.text


def test_fingerprint_stage_reuses_its_file_unless_clean(dataset_dir, roots, monkeypatch):
    dataset = load_dataset(dataset_dir)
    first = stages.fingerprint_stage(dataset, 1, progress=False)
    path = stages.preprocessed_folder(dataset) / "fingerprint.json"
    assert path == roots["preprocessed"] / dataset.name / "fingerprint.json" and path.is_file()
    calls = []
    monkeypatch.setattr(stages, "extract_fingerprint", lambda *a: calls.append(a) or first)
    assert stages.fingerprint_stage(dataset, 1, progress=False) == first and calls == []
    stages.fingerprint_stage(dataset, 1, clean=True, progress=False)
    assert len(calls) == 1


def test_plan_stage_writes_plans_for_the_cpu_without_weights_and_says_so(dataset_dir, roots, monkeypatch, caplog):
    monkeypatch.setattr(stages, "detect_gpu_memory_gib", lambda: None)
    dataset = load_dataset(dataset_dir)
    fingerprint = stages.fingerprint_stage(dataset, 1, progress=False)
    with caplog.at_level(logging.INFO):
        plans = stages.plan_stage(dataset, fingerprint)
    config = plans.configuration("2d")
    assert (stages.preprocessed_folder(dataset) / "plans.json").is_file()
    assert config.device == "cpu" and not config.pretrained and "NOT PRETRAINED" in caplog.text


def test_preprocess_stage_needs_the_plans_on_disk(dataset_dir, roots):
    from sss_auto.errors import SSSError

    with pytest.raises(SSSError, match="plans.json"):
        stages.preprocess_stage(load_dataset(dataset_dir), ["2d"], 1, progress=False)
