"""Connected-component postprocessing: the rules, their choice from validation predictions, postprocessing.json."""

import json
import math

import numpy as np
import pytest

from sss_auto.errors import SSSError
from sss_auto.postprocessing.best_configuration import rank
from sss_auto.postprocessing.components import ClassRule, apply_rules, filter_components
from sss_auto.postprocessing.determine import determine, load_postprocessing, save_postprocessing

from tests.conftest import write_volume


def _two_blobs(big=(slice(2, 6), slice(2, 10), slice(2, 10)), small=(slice(1, 2), slice(14, 16), slice(14, 16))):
    mask = np.zeros((8, 20, 20), bool)
    mask[big] = True
    mask[small] = True
    return mask


def test_keep_largest_and_minimum_volume_remove_the_right_components():
    mask = _two_blobs()  # 256 voxels and 4 voxels
    largest = filter_components(mask, ClassRule(keep_largest=True), (3.0, 1.0, 1.0))
    assert largest.sum() == 256 and not largest[1, 14, 14]
    spacing = (2.0, 1.0, 1.0)  # 2 mm³ per voxel: the small blob is 0.008 ml, the big one 0.512 ml
    assert filter_components(mask, ClassRule(min_component_ml=0.01), spacing).sum() == 256
    assert filter_components(mask, ClassRule(min_component_ml=0.005), spacing).sum() == 260
    assert filter_components(mask, ClassRule(), spacing) is mask
    assert not filter_components(np.zeros_like(mask), ClassRule(keep_largest=True), spacing).any()


def test_rules_change_only_their_class_and_removed_voxels_become_background():
    labels = _two_blobs().astype(np.uint8)  # class 1: two blobs
    labels[6, 15:18, 2:6] = 2  # class 2: one more small blob, untouched by class 1's rule
    labels[7, 2:4, 15:18] = 2
    out = apply_rules(labels, {1: ClassRule(keep_largest=True), 2: ClassRule()}, (3.0, 1.0, 1.0))
    assert out[1, 14, 14] == 0 and (out == 1).sum() == 256
    assert np.array_equal(out == 2, labels == 2) and labels[1, 14, 14] == 1, "input untouched"


def test_determine_keeps_a_rule_only_where_it_raises_the_class_dice(tmp_path):
    reference = np.zeros((8, 20, 20), np.uint8)
    reference[2:6, 2:10, 2:10] = 1  # class 1: one object; the prediction adds a false positive blob
    reference[1:3, 14:18, 14:18] = 2  # class 2: two true objects, both predicted
    reference[5:7, 14:18, 2:6] = 2
    prediction = reference.copy()
    prediction[1, 14:16, 2:4] = 1
    pairs = []
    for case in ("a", "b"):
        write_volume(tmp_path / "pred" / f"{case}.nii.gz", prediction)
        write_volume(tmp_path / "ref" / f"{case}.nii.gz", reference)
        pairs.append((tmp_path / "pred" / f"{case}.nii.gz", tmp_path / "ref" / f"{case}.nii.gz"))
    candidates = {1: [ClassRule(keep_largest=True)], 2: [ClassRule(keep_largest=True), ClassRule(min_component_ml=1.0)]}
    result = determine(pairs, candidates, progress=False)
    one, two = result["classes"]["1"], result["classes"]["2"]
    assert one["chosen"] == "keep the largest component" and one["candidates"]["keep the largest component"] == 1.0
    assert one["dice_unchanged"] < 1.0
    assert two["chosen"] == "unchanged" and two["dice_unchanged"] == 1.0  # keeping one of two true objects would hurt
    assert two["candidates"]["keep the largest component"] < 1.0
    assert result["n_cases"] == 2

    path = tmp_path / "postprocessing.json"
    save_postprocessing(result, path, {"run": "SSS__2d", "folds": ["0"]})
    rules = load_postprocessing(path)
    assert rules == {1: ClassRule(keep_largest=True), 2: ClassRule()}
    data = json.loads(path.read_text())
    data["classes"]["1"]["rule"]["keep_largest"] = "yes"
    path.write_text(json.dumps(data))
    with pytest.raises(SSSError, match="postprocessing.json: not a valid postprocessing file"):
        load_postprocessing(path)


def test_runs_rank_by_postprocessed_dice_with_nan_last():
    runs = [{"run": "a", "dice_postprocessed": 0.4}, {"run": "b", "dice_postprocessed": math.nan},
            {"run": "c", "dice_postprocessed": 0.7}]
    assert [r["run"] for r in rank(runs)] == ["c", "a", "b"]
