"""Run folders, the run's log line, and the cached-grid validation's pooled Dice, each on its own."""

import math

import numpy as np
import torch

from sss_auto.configuration import Ablation, TrainConfig
from sss_auto.data.cache import CaseCache
from sss_auto.inference.settings import InferenceSettings
from sss_auto.inference.two_pass import VolumePrediction
from sss_auto.method.reliability import PseudoLabelRule
from sss_auto.training import validation
from sss_auto.training.distributed import DistInfo
from sss_auto.training.run import describe_run, fold_folder, run_folder


def test_run_and_fold_folders_follow_nnunet_style_names(roots):
    assert run_folder("Dataset900_Demo", "SSS-supervised", "2d") == roots["results"] / "Dataset900_Demo" / "SSS-supervised__2d"
    assert fold_folder("Dataset900_Demo", "SSS", "2d", "all") == roots["results"] / "Dataset900_Demo" / "SSS__2d" / "fold_all"


def test_describe_run_names_device_batch_and_schedule(dataset_dir):
    from planners.fingerprint import extract_fingerprint
    from planners.planner import plan
    from planners.target import PlanTarget
    from sss_auto.dataset.raw import load_dataset

    plans = plan(extract_fingerprint(load_dataset(dataset_dir), 1, False), PlanTarget("cuda", 8.0), "test")
    config = TrainConfig(dataset="d", configuration="2d", fold="0", plans=plans)
    line = describe_run(config, DistInfo(0, 1, "cpu"))
    p, t = config.plan, config.training
    assert line.startswith("training on cpu in float32, 1 process(es): SAM-2 test")
    assert f"batch {p.batch_size_labeled} labeled + {p.batch_size_unlabeled} unlabeled" in line
    assert f"{t.num_epochs} epochs x {t.iterations_per_epoch} iterations" in line or "-minute budget" in line
    supervised = TrainConfig(dataset="d", configuration="2d", fold="0", plans=plans,
                             ablation=Ablation(supervised_only=True))
    line = describe_run(supervised, DistInfo(0, 2, "cpu"))
    assert "2 process(es)" in line and "+ 0 unlabeled" in line and line.endswith("supervised only")


class _Model:
    """What validate_cached reads of a model when prediction itself is replaced."""

    def __init__(self, num_classes: int) -> None:
        self.config = type("Config", (), {"num_classes": num_classes})()


def test_validate_cached_pools_voxels_over_cases_and_reports_coarse_beside_fused(cache_folder, monkeypatch):
    cache = CaseCache(cache_folder)
    ids = cache.ids("labeled")[:2]
    num_classes = 1 + max(int(np.asarray(cache.load(i).seg).max()) for i in cache.ids("labeled"))

    references = iter([np.asarray(cache.load(i).seg) for i in ids])  # validate_cached predicts the cases in order

    def perfect_fused_empty_coarse(models, data, spacing_mm, settings, constraints):
        reference = next(references)
        assert reference.shape == data.shape[1:]
        fused = np.stack([(reference == k) for k in range(num_classes)]).astype(np.float32)
        coarse = np.zeros_like(fused)
        coarse[0] = 1.0
        return VolumePrediction(fused, None, [], coarse)

    monkeypatch.setattr(validation, "predict_volume", perfect_fused_empty_coarse)
    scores = validation.validate_cached([_Model(num_classes)], cache, ids, InferenceSettings(patch=64), {})
    present = {int(k) for i in ids for k in np.unique(np.asarray(cache.load(i).seg)) if k > 0}
    assert present, "the demo cases hold foreground"
    for k in range(1, num_classes):
        if k in present:
            assert scores[f"dice_{k}"] == 1.0 and scores[f"dice_coarse_{k}"] == 0.0
        else:
            assert math.isnan(scores[f"dice_{k}"])
    assert scores["dice_mean"] == 1.0 and scores["dice_coarse_mean"] == 0.0


def test_validate_cached_with_a_pseudo_label_rule_reports_what_pseudo_labels_would_find_and_teach_away(
        cache_folder, monkeypatch):
    cache = CaseCache(cache_folder)
    ids = cache.ids("labeled")[:2]
    num_classes = 1 + max(int(np.asarray(cache.load(i).seg).max()) for i in cache.ids("labeled"))

    def confident_background(models, data, spacing_mm, settings, constraints):
        probabilities = np.zeros((num_classes, *data.shape[1:]), np.float32)
        probabilities[0] = 1.0
        return VolumePrediction(probabilities, None, [], probabilities)

    monkeypatch.setattr(validation, "predict_volume", confident_background)
    rule = PseudoLabelRule(torch.full((num_classes,), 0.95, dtype=torch.float64))
    scores = validation.validate_cached([_Model(num_classes)], cache, ids, InferenceSettings(patch=64), {}, rule)
    present = {int(k) for i in ids for k in np.unique(np.asarray(cache.load(i).seg)) if k > 0}
    assert present
    for k in range(1, num_classes):
        assert (scores.get(f"found_{k}"), scores.get(f"away_{k}")) == ((0.0, 1.0) if k in present else (None, None))
    plain = validation.validate_cached([_Model(num_classes)], cache, ids, InferenceSettings(patch=64), {})
    assert not any(key.startswith(("found_", "away_")) for key in plain)
