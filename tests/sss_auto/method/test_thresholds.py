import pytest
import torch

from sss_auto.method.steps import passes
from sss_auto.method.thresholds import ConfidenceThresholds


def _batch(conf_bg: float, conf_fg: float):
    y_hat = torch.zeros(1, 4, 4, dtype=torch.int64)
    y_hat[0, 0, :2] = 1
    conf = torch.full((1, 4, 4), conf_bg)
    conf[0, 0, :2] = conf_fg
    return conf, y_hat


def test_global_thresholds_are_tau_for_every_class_and_never_move():
    thresholds = ConfidenceThresholds("global", 0.95, 3)
    thresholds.update(*_batch(0.99, 0.6))
    assert thresholds.values().tolist() == [0.95] * 3 and thresholds.metrics() == {}


def test_class_adaptive_thresholds_scale_tau_by_each_class_confidence_relative_to_the_surest():
    thresholds = ConfidenceThresholds("class_adaptive", 0.95, 3)
    assert thresholds.values().tolist() == [0.95] * 3  # nothing seen yet
    thresholds.update(*_batch(0.99, 0.66))
    values = thresholds.values()
    assert values[0] == pytest.approx(0.95) and values[1] == pytest.approx(0.95 * 0.66 / 0.99)
    assert values[2] == pytest.approx(0.95)  # class 2 never predicted: keeps tau
    conf, y_hat = _batch(0.99, 0.66)
    mask = passes(conf, y_hat, values)
    assert mask[0, 0, :2].all() and mask.all()  # the unsure class-1 pixels now count
    assert not passes(conf, y_hat, 0.95)[0, 0, :2].any()  # under the global threshold they did not
    for _ in range(3000):  # the teacher grows sure of class 1: its bar rises towards tau
        thresholds.update(*_batch(0.99, 0.97))
    assert thresholds.values()[1] == pytest.approx(0.95 * 0.97 / 0.99, abs=0.02)


def test_class_adaptive_state_round_trips():
    thresholds = ConfidenceThresholds("class_adaptive", 0.9, 3)
    thresholds.update(*_batch(0.98, 0.5))
    restored = ConfidenceThresholds("class_adaptive", 0.9, 3)
    restored.load_state_dict(thresholds.state_dict())
    torch.testing.assert_close(restored.values(), thresholds.values())
    with pytest.raises(ValueError, match="class_adaptive"):
        ConfidenceThresholds("bogus", 0.9, 3)
