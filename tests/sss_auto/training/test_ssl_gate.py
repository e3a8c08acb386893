"""The `ready` start gate of the semi-supervised phase (training/loop.py: _ssl_gate_open, _remaining_share), and
the classes the per-class gates keep out of the unlabeled loss (ignored_classes)."""

import logging
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from planners.plans import TrainingPlan
from sss_auto.method.readiness import ClassReadiness
from sss_auto.training.budget import BudgetTracker
from sss_auto.training.loop import TrainState, _judge_reliability, _remaining_share, _ssl_gate_open, ignored_classes

NAMES = {1: "IPH", 2: "SDH"}


def readiness(dice: list[float]) -> ClassReadiness:
    """Running labeled Dice `dice` for classes 1.. (background first)."""
    ready = ClassReadiness({1: 0.01, 2: 0.01}, 1 + len(dice))
    ready.dice = torch.tensor([float("nan"), *dice], dtype=torch.float64)
    return ready


def gate(state: TrainState, dice: list[float], remaining: float, budget: BudgetTracker | None = None) -> bool:
    return _ssl_gate_open(state, planned=2, budget=budget, readiness=readiness(dice), classes={1, 2}, names=NAMES,
                          remaining_share=remaining, min_remaining=0.25)


def test_the_gate_opens_after_the_warmup_once_every_class_is_learned_and_enough_of_the_run_remains(caplog):
    assert not gate(TrainState(epoch=1), [0.9, 0.9], 0.9), "within the planned warm-up"
    waiting = TrainState(epoch=2)
    with caplog.at_level(logging.INFO):
        assert not gate(waiting, [0.9, 0.3], 0.6)
    assert waiting.warmup_hold == 3 and not waiting.ssl_too_late
    assert "semi-supervision waits (ssl_start ready): SDH 0.30" in caplog.text
    assert gate(TrainState(epoch=3), [0.9, 0.6], 0.5)
    assert gate(TrainState(epoch=3), [0.9, 0.6], 0.25), "exactly the minimum share still opens"


def test_a_class_learned_too_late_leaves_the_run_supervised_to_its_end_and_the_hold_is_planned(caplog):
    budget = BudgetTracker(600, "cpu", num_epochs=10)
    state = TrainState(epoch=8)
    with caplog.at_level(logging.INFO):
        assert not gate(state, [0.9, 0.9], 0.2, budget)
    assert state.ssl_too_late and state.warmup_hold == 9
    assert budget.holding and budget.warmup_hold == 9, "the remaining epochs stay planned as supervised ones"
    assert "semi-supervision will not start: less than 25% of the run remains" in caplog.text
    state.epoch = 9
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert not gate(state, [0.9, 0.9], 0.9), "once shut, the gate stays shut (also after --c: it is checkpointed)"
    assert state.warmup_hold == 10 and not caplog.text, "said once"


def test_the_remaining_share_is_of_the_time_budget_or_else_of_the_epochs():
    assert _remaining_share(7, 10, None, spent_s=1e9) == pytest.approx(0.3)
    assert _remaining_share(12, 10, None, spent_s=0) == 0.0
    budget = BudgetTracker(600, "cpu", num_epochs=10, elapsed_s=300)  # half of it spent before a resume
    assert _remaining_share(7, 10, budget, spent_s=150) == pytest.approx(0.25)
    assert _remaining_share(7, 10, budget, spent_s=900) == 0.0


def test_ignored_classes_join_the_unready_and_the_unreliable_and_trust_no_class_before_a_validation():
    learned = readiness([0.9, 0.1, 0.9])  # class 2 not learned on the labeled slices
    plan = TrainingPlan()
    assert ignored_classes(plan, learned, [False, True, False, False]) is None, "neither gate: nothing ignored"
    unready = replace(plan, unready_class_gate=True)
    assert ignored_classes(unready, learned, None).tolist() == [False, False, True, False]
    reliable = replace(plan, reliability_gate=True)
    assert ignored_classes(reliable, learned, None).tolist() == [False, True, True, True], "no validation yet"
    assert ignored_classes(reliable, learned, [False, True, False, False]).tolist() == [False, True, False, False]
    both = replace(plan, unready_class_gate=True, reliability_gate=True)
    assert ignored_classes(both, learned, [False, True, False, False]).tolist() == [False, True, True, False]


def test_reliability_is_judged_at_each_validation_and_said_when_it_changes(caplog):
    run = SimpleNamespace(val_ids=["case_a", "case_b"])
    values = {"found_1": 0.09, "away_1": 0.53, "found_2": 0.30, "away_2": 0.10}  # class 3 absent
    state = TrainState()
    with caplog.at_level(logging.INFO, logger="sss_auto.training.loop"):
        _judge_reliability(values, state, run, NAMES | {3: "EDH"}, 4, gate=False)
    assert state.unreliable == [False, True, False, True] and values["unreliable_classes"] == 2.0
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "teach more voxels of IPH away as background than they find" in warning[0].message
    assert "IPH found 9 %, taught away 53 %" in warning[0].message and "EDH" not in warning[0].message
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sss_auto.training.loop"):
        _judge_reliability(dict(values), state, run, NAMES | {3: "EDH"}, 4, gate=False)
    assert not caplog.records, "the same judgement is not repeated"
    with caplog.at_level(logging.INFO, logger="sss_auto.training.loop"):
        _judge_reliability({"found_1": 0.4, "away_1": 0.1}, state, run, NAMES | {3: "EDH"}, 4, gate=True)
    assert state.unreliable == [False, False, True, True]
    assert ("reliability gate (2 validation case(s)): IPH used (found 40 %, taught away 10 %); SDH kept out "
            "(found absent, taught away absent)") in caplog.text
