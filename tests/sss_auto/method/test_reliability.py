"""The reliability gate's measurement: what pseudo labels would find and teach away on labeled volumes."""

import numpy as np
import pytest
import torch

from sss_auto.method.reliability import PseudoLabelRule, reliability_counts, reliability_metrics, unreliable_classes


def _volume(reference: np.ndarray, labels: np.ndarray, confidence: np.ndarray, num_classes: int) -> np.ndarray:
    """(K+1, Z, Y, X) probabilities whose argmax is `labels` with that confidence, the rest spread evenly."""
    rest = (1 - confidence) / (num_classes - 1)
    probabilities = np.repeat(rest[None], num_classes, 0).astype(np.float32)
    for k in range(num_classes):
        probabilities[k][labels == k] = confidence[labels == k]
    return probabilities


def test_counts_found_away_and_size_per_class_by_hand():
    reference = np.array([[[1, 1, 1, 1, 2, 2, 0, 0]]])
    labels = np.array([[[1, 1, 0, 0, 2, 0, 0, 1]]])
    confidence = np.array([[[0.9, 0.6, 0.99, 0.5, 0.9, 0.99, 0.99, 0.9]]])
    rule = PseudoLabelRule(torch.tensor([0.95, 0.8, 0.8]))
    counts = reliability_counts(_volume(reference, labels, confidence, 3), reference, rule)
    # class 1: voxel 0 found (0.9 ≥ 0.8), voxel 1 not (0.6), voxel 2 taught away (bg 0.99 ≥ 0.95), voxel 3 not (0.5)
    # class 2: voxel 4 found, voxel 5 taught away
    assert counts[1:, 1].tolist() == [1, 1, 4] and counts[1:, 2].tolist() == [1, 1, 2]
    assert counts[3, 0] == 2 and counts[1, 0] == 1  # background: one confident correct voxel
    assert counts[0].tolist() == [3, 2, 1], "claimed: confident voxels pseudo-labelled each class, right or wrong"
    metrics = reliability_metrics(counts)
    assert metrics == {"found_1": 0.25, "away_1": 0.25, "found_2": 0.5, "away_2": 0.5}


def test_alignment_is_applied_before_the_thresholds():
    reference = np.array([[[1, 1]]])
    probabilities = np.array([[[[0.6, 0.6]]], [[[0.4, 0.4]]]], np.float32)  # background wins without alignment
    thresholds = torch.tensor([0.5, 0.5])
    plain = reliability_counts(probabilities, reference, PseudoLabelRule(thresholds))
    aligned = reliability_counts(probabilities, reference, PseudoLabelRule(thresholds, torch.tensor([1.0, 3.0])))
    assert plain[1:, 1].tolist() == [0, 2, 2] and aligned[1:, 1].tolist() == [2, 0, 2]


@pytest.mark.parametrize(("metrics", "expected"), [
    ({"found_1": 0.3, "away_1": 0.1, "found_2": 0.1, "away_2": 0.4}, [False, False, True, True]),  # 3 absent
    ({"found_1": 0.2, "away_1": 0.2, "found_2": 0.0, "away_2": 0.0, "found_3": 0.5, "away_3": 0.6},
     [False, False, False, True]),  # a tie is reliable
])
def test_a_class_is_unreliable_when_found_less_than_taught_away_or_absent(metrics, expected):
    assert unreliable_classes(metrics, 4).tolist() == expected
