import pytest
import torch

from sss_auto.method.alignment import MAX_FACTOR, PriorAlignment, align


def test_alignment_lifts_an_under_predicted_class_to_the_labeled_share():
    alignment = PriorAlignment.from_voxel_fractions({1: 0.01, 2: 0.001}, 3)
    assert alignment.prior.tolist() == pytest.approx([0.989, 0.01, 0.001])
    assert alignment.factors() is None  # nothing seen yet: probabilities pass unchanged
    probs = torch.tensor([0.99, 0.0099, 0.0001]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert align(probs, None) is probs
    alignment.update(probs.mean((0, 2, 3)))
    factors = alignment.factors()
    assert factors[2] == pytest.approx(10.0, rel=1e-3) and factors[0] == pytest.approx(0.999, rel=1e-2)
    aligned = align(probs, factors)
    torch.testing.assert_close(aligned.sum(1), torch.ones(1, 2, 2))
    assert aligned[0, 2, 0, 0] == pytest.approx(0.001, rel=1e-2)  # the class's mass now matches its prior


def test_alignment_factors_are_bounded_and_state_round_trips():
    alignment = PriorAlignment.from_voxel_fractions({1: 0.01}, 3)  # class 2 absent from the labeled data
    alignment.update(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))  # a class with no mass at all
    factors = alignment.factors()
    assert factors[1] == MAX_FACTOR and factors[2] == pytest.approx(1 / MAX_FACTOR)
    restored = PriorAlignment.from_voxel_fractions({1: 0.01}, 3)
    restored.load_state_dict(alignment.state_dict())
    torch.testing.assert_close(restored.factors(), factors)
    assert set(alignment.metrics()) == {"align_1", "align_2"}
