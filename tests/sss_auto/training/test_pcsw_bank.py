import logging

import pytest
import torch

from sss_auto.data.cache import CaseCache
from sss_auto.inference.two_pass import InferenceSettings
from sss_auto.networks.model import ModelConfig, SSSNet
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
