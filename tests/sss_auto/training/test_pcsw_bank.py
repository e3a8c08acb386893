import logging

import pytest
import torch

from sss_auto.data.cache import CaseCache
from sss_auto.inference.settings import InferenceSettings
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet
from sss_auto.training.pcsw_bank import refresh_bank


def _teacher_predicting(winner: int) -> SSSNet:
    """A test network whose coarse head gives class `winner` everywhere."""
    torch.manual_seed(0)
    teacher = SSSNet(ModelConfig(1, 4, 64, "test")).eval()
    last = teacher.coarse_head.out[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-10.0)
        last.bias[winner] = 10.0
    return teacher


@pytest.mark.parametrize("winner", [0, 1])
def test_bank_covers_every_case_in_order_and_warns_when_the_teacher_sees_no_foreground(cache_folder, caplog, winner):
    cache = CaseCache(cache_folder)
    ids = cache.ids("unlabeled")
    with caplog.at_level(logging.INFO):
        bank = refresh_bank(_teacher_predicting(winner), cache, ids, InferenceSettings(patch=64, tta=False), {}, 3,
                            progress=False)
    assert list(bank.objects) == ids and bank.epoch == 3
    warned = "predicts no foreground in any unlabeled case" in caplog.text
    if winner == 0:  # background everywhere: nothing to prompt, and the user is told why
        assert warned and bank.acceptance == 0.0
        assert all(bank.objects[i].labels.size == 0 for i in ids)
    else:  # class 1 fills each volume: one continuous object per case, classes 2 and 3 get none
        assert not warned and bank.acceptance == pytest.approx(1 / 3)
        assert all(set(bank.objects[i].labels.ravel().tolist()) == {1} for i in ids)


def test_a_rolling_refresh_renews_missing_then_oldest_cases_and_keeps_the_others(cache_folder, caplog):
    cache = CaseCache(cache_folder)
    ids = cache.ids("unlabeled")
    assert len(ids) == 2
    settings = InferenceSettings(patch=64, tta=False)
    caplog.set_level(logging.INFO)
    first = refresh_bank(_teacher_predicting(0), cache, ids, settings, {}, 2, progress=False, fraction=0.5)
    assert list(first.objects) == ids and first.built == {ids[0]: 2, ids[1]: 2}, "missing cases are always renewed"
    second = refresh_bank(_teacher_predicting(1), cache, ids, settings, {}, 3, progress=False, previous=first, fraction=0.5)
    assert second.built == {ids[0]: 3, ids[1]: 2} and second.epoch == 3
    assert second.objects[ids[0]].labels.size and second.objects[ids[1]] is first.objects[ids[1]]
    third = refresh_bank(_teacher_predicting(1), cache, ids, settings, {}, 4, progress=False, previous=second, fraction=0.5)
    assert third.built == {ids[0]: 3, ids[1]: 4}, "the oldest entry is renewed next"
    assert "PCSW bank refresh at epoch 3 starts: 1 of 2 unlabeled case(s) (rolling refresh" in caplog.text
    restored = type(third).from_state_dict(third.state_dict())
    assert restored.built == third.built and restored.due(ids, 0.5) == [ids[0]]


def test_due_cases_by_hand():
    from sss_auto.prompting.bank import PromptBank, StoredObjects

    empty = StoredObjects.from_volume(torch.zeros(1, 2, 2, dtype=torch.uint8).numpy())
    bank = PromptBank({"a": empty, "b": empty, "c": empty}, 9, built={"a": 9, "b": 4, "c": 7})
    assert bank.due(["a", "b", "c", "d"], 0.5) == ["b", "d"]  # d has no objects; then the oldest, b
    assert bank.due(["a", "b", "c", "d"], 1.0) == ["a", "b", "c", "d"]
    assert bank.due(["a", "b", "c"], 0.1) == ["b"]
