"""sss_train's training flags come from the TrainingPlan fields: dest = field name, help and choices from the field."""

import argparse
from dataclasses import fields

import pytest

from planners.plans import TRAINING_CHOICES, TrainingPlan, flag_of, overridable_fields
from sss_auto.cli.train import _parser
from sss_auto.training.options import OVERRIDABLE


def _actions() -> dict[str, argparse.Action]:
    return {action.dest: action for action in _parser()._actions}


def test_every_overridable_field_is_a_flag_whose_dest_is_the_field_and_whose_default_is_the_plans():
    actions = _actions()
    assert set(OVERRIDABLE) == {f.name for f in overridable_fields()}
    assert {"num_epochs", "iterations_per_epoch", "learning_rate", "time_budget_min"} <= set(OVERRIDABLE)
    for name in OVERRIDABLE:
        action = actions[name]
        assert flag_of(name) in action.option_strings
        assert action.default is None, f"{name}: None leaves the plan's value"
        assert f"training.{name}" in action.help
    for name, allowed in TRAINING_CHOICES:
        assert tuple(actions[name].choices) == allowed
    not_flags = {f.name for f in fields(TrainingPlan)} - set(OVERRIDABLE)
    # --pcsw-tau is the one exception: an ablation (it names the run folder), not a plans override
    assert "ema_decay" in not_flags and not_flags & set(actions) == {"pcsw_tau"}, "plans-only fields have no flag"


def test_flags_parse_into_the_fields_with_their_types():
    args = _parser().parse_args(["X", "2d", "0", "--epochs", "3", "--lr", "0.001", "--no-ema-restart",
                                 "--unready-gate", "--alignment", "none", "--time-budget", "1.5"])
    assert (args.num_epochs, args.learning_rate, args.time_budget_min) == (3, 0.001, 1.5)
    assert args.ema_restart_at_ssl is False and args.unready_class_gate is True
    assert args.pseudo_label_alignment == "none" and args.warmup_epochs is None
    assert flag_of("num_epochs") == "--epochs" and flag_of("warmup_epochs") == "--warmup-epochs"


def test_a_choice_outside_the_plans_allowed_values_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["X", "2d", "0", "--confidence-mode", "bogus"])
    assert exit_info.value.code == 2 and "class_adaptive" in capsys.readouterr().err
