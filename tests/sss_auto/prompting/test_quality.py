import math

import numpy as np
import pytest

from sss_auto.prompting.pcsw import PCSWResult
from sss_auto.prompting.quality import add_counts, prompt_quality_counts, rates


def _result(mask):
    return PCSWResult(mask, "window" if mask is not None else "none", None, 0.0, 0)


def test_recall_precision_and_box_iou_of_prompts_against_the_labels():
    reference = np.zeros((4, 10, 10), np.int64)
    reference[0:2, 1:5, 1:5] = 1  # class 1: two objects ...
    reference[3, 7:9, 7:9] = 1  # ... the second one not prompted
    reference[1, 6:8, 0:2] = 2  # class 2: prompted in the wrong place
    kept_1 = np.zeros(reference.shape, bool)
    kept_1[0:2, 1:5, 1:3] = True  # half the first object's box on both slices: IoU 0.5
    kept_2 = np.zeros(reference.shape, bool)
    kept_2[2, 0:2, 8:10] = True  # a slice without class 2
    counts = prompt_quality_counts([_result(kept_1), _result(kept_2), _result(None)], reference)
    total = {}
    add_counts(total, counts)
    add_counts(total, counts)  # two identical volumes: the rates do not change
    r = rates(total)
    assert r["prompt_recall_1"] == pytest.approx(0.5) and r["prompt_precision_1"] == 1.0
    assert r["prompt_box_iou_1"] == pytest.approx(0.5)
    assert r["prompt_recall_2"] == 0.0 and r["prompt_precision_2"] == 0.0 and r["prompt_box_iou_2"] == 0.0
    assert math.isnan(r["prompt_recall_3"]) and math.isnan(r["prompt_precision_3"])  # class 3: none anywhere
