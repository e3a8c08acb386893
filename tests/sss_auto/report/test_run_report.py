"""The fold report: which cases it shows, the prompt numbers it picks, and the page built from a fold's files."""

import json
import math

import numpy as np
import pytest

from sss_auto.errors import SSSError
from sss_auto.evaluation.evaluate import evaluate_folders, write_summary
from sss_auto.report.run_report import case_ranking, last_prompt_quality, pick_cases, write_fold_report
from tests.conftest import CHROMIUM, headless_dom, write_volume



def test_cases_are_ranked_by_mean_dice_and_best_median_worst_are_distinct():
    summary = {"per_case": {"a": {"1": {"dice": 0.9}, "2": {"dice": None}}, "b": {"1": {"dice": 0.1}, "2": {"dice": 0.3}},
                            "c": {"1": {"dice": 0.5}, "2": {"dice": 0.5}}, "d": {"1": {"dice": None}}}}
    ranking = case_ranking(summary)
    assert ranking == [("b", pytest.approx(0.2)), ("c", 0.5), ("a", 0.9)]  # d has no defined Dice
    assert {role: case for role, (case, _) in pick_cases(ranking).items()} == {"best": "a", "worst": "b", "median": "c"}
    assert list(pick_cases(ranking[:1])) == ["best"] and list(pick_cases(ranking[:2])) == ["best", "worst"]
    assert pick_cases([]) == {}


def test_prompt_quality_is_the_last_logged_value_per_class():
    history = {"prompt_recall_1": [0.2, None, 0.5, math.nan], "prompt_precision_1": [1.0, None, 0.75, None],
               "prompt_box_iou_1": [None, None, None, None], "prompt_recall_2": [None] * 4}
    assert last_prompt_quality(history, ["1", "2"]) == {"1": {"prompt_recall": 0.5, "prompt_precision": 0.75}}


def _fold(tmp_path):
    """A finished fold's files (as sss_train writes them) for two validation cases, and the raw dataset."""
    raw, fold = tmp_path / "raw", tmp_path / "results" / "SSS__2d" / "fold_0"
    labels = {"background": 0, "IPH": 1, "IVH": 2}
    rng = np.random.default_rng(0)
    for case, shift in (("case_a", 0), ("case_b", 3)):
        label = np.zeros((3, 16, 16), np.uint8)
        label[1, 4:10, 4:10], label[1, 12:15, 12:15] = 1, 2
        prediction = np.roll(label, shift, axis=2)
        write_volume(raw / "imagesTr" / f"{case}_0000.nii.gz", rng.normal(size=label.shape).astype(np.float32))
        write_volume(raw / "labelsTr" / f"{case}.nii.gz", label)
        write_volume(fold / "validation" / f"{case}.nii.gz", prediction)
        write_volume(fold / "validation" / "coarse" / f"{case}.nii.gz", label * 0)
    names = {str(v): k for k, v in labels.items()}
    summary = evaluate_folders(raw / "labelsTr", fold / "validation", [1, 2], progress=False)
    coarse = evaluate_folders(raw / "labelsTr", fold / "validation" / "coarse", [1, 2], progress=False)
    summary["coarse"] = {"mean": coarse["mean"], "mean_per_class": coarse["mean_per_class"]}
    write_summary(summary, fold / "validation" / "summary.json", names)
    (fold.parent / "dataset.json").write_text(json.dumps({"labels": labels, "file_ending": ".nii.gz"}))
    config = {"dataset": "Dataset900_DemoBHSD", "configuration": "2d", "fold": "0", "seed": 0, "device": "cpu",
              "ablation": {"supervised_only": False, "use_dfe": False, "use_pcsw": True, "refine": True},
              "plan": {"sam2_variant": "test", "patch_size": [64, 64], "batch_size_labeled": 4, "batch_size_unlabeled": 4,
                       "training": {"learning_rate": 0.001, "unlabeled_weight": 0.2}}}
    (fold / "training_config.json").write_text(json.dumps(config))
    (fold / "training_summary.json").write_text(json.dumps({"epochs": 3, "iterations": 30, "duration_s": 12.5,
                                                            "sam2_note": "RANDOMLY INITIALISED SAM-2 encoder"}))
    (fold / "history.json").write_text(json.dumps({"prompt_recall_1": [0.5, None], "prompt_precision_1": [1.0, None],
                                                   "prompt_box_iou_1": [0.25, None]}))
    return raw, fold, summary


def test_fold_report_shows_settings_tables_and_the_chosen_cases(tmp_path):
    raw, fold, summary = _fold(tmp_path)
    page = write_fold_report(fold, raw).read_text()
    assert page.count("<img") == 2 and "best_case_a.png" in page and "worst_case_b.png" in page
    for name in ("best_case_a.png", "worst_case_b.png"):
        assert (fold / "report" / name).read_bytes()[:4] == b"\x89PNG"
    assert "weak-to-strong + PCSW + refinement" in page and "RANDOMLY INITIALISED" in page
    assert f'data-class="1" data-metric="dice">{summary["mean_per_class"]["1"]["dice"]:.3f}<' in page
    assert 'id="coarse_vs_fused"' in page and 'id="prompts"' in page and "0.250" in page
    assert "Cross-validation" not in page, "only one of five folds exists"
    assert "2 validation case(s)" in page


def test_fold_report_without_validation_or_raw_image_says_which_file(tmp_path):
    raw, fold, _ = _fold(tmp_path)
    (raw / "imagesTr" / "case_a_0000.nii.gz").unlink()
    with pytest.raises(SSSError, match="case_a_0000.nii.gz: needed for the best case's overlay"):
        write_fold_report(fold, raw)
    (fold / "training_config.json").write_text(json.dumps({"dataset": "x"}))
    with pytest.raises(SSSError, match="training_config.json: has no 'plan'"):
        write_fold_report(fold, raw)
    (fold / "validation" / "summary.json").unlink()
    with pytest.raises(SSSError, match="no final validation yet"):
        write_fold_report(fold, raw)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium for the headless-browser check (apt install chromium)")
def test_fold_report_loads_in_a_headless_browser_with_its_pictures_and_numbers(tmp_path):
    raw, fold, summary = _fold(tmp_path)
    page = write_fold_report(fold, raw)
    dom = headless_dom(page)
    assert 'data-images="loaded"' in dom, "every picture of the page loaded"
    assert f'data-metric="dice">{summary["mean"]["dice"]:.3f}<' in dom
    (fold / "report" / "worst_case_b.png").unlink()
    assert 'data-images="broken"' in headless_dom(page) and "missing picture: worst_case_b.png" in headless_dom(page)
