"""The two-pass prediction of one volume: pass 1 alone, pass 2 skipped without prompts, run with them, folds averaged."""

import numpy as np
import pytest
import torch

from sss_auto.inference import two_pass
from sss_auto.inference.settings import InferenceSettings
from sss_auto.inference.two_pass import mean_probabilities, predict_volume
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet

SPACING = (3.0, 1.0, 1.0)


def _model(seed: int, refine: bool = True) -> SSSNet:
    torch.manual_seed(seed)
    return SSSNet(ModelConfig(1, 3, 64, "test", refine=refine)).eval()


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(size=(1, 2, 64, 64)).astype(np.float32)


def test_without_prompts_only_pass_1_runs_and_probabilities_sum_to_one(data):
    result = predict_volume([_model(0)], data, SPACING, InferenceSettings(patch=64, tta=False, use_prompts=False))
    assert result.probabilities.shape == (3, 2, 64, 64) and result.prompt_map is None and result.pcsw == []
    assert result.probabilities is result.coarse
    assert np.allclose(result.probabilities.sum(0), 1.0, atol=1e-5)


def test_a_model_without_refiner_never_runs_pass_2(data):
    result = predict_volume([_model(0, refine=False)], data, SPACING, InferenceSettings(patch=64, tta=False))
    assert result.prompt_map is None and result.probabilities is result.coarse


def test_pass_2_is_skipped_when_pcsw_keeps_no_object(data, monkeypatch):
    monkeypatch.setattr(two_pass, "pcsw_label_volume",
                        lambda coarse, *a: (np.zeros(coarse.shape[1:], np.uint8), []))
    result = predict_volume([_model(0)], data, SPACING, InferenceSettings(patch=64, tta=False))
    assert result.prompt_map is not None and not result.prompt_map.any()
    assert result.probabilities is result.coarse


def test_pass_2_runs_with_the_prompt_map_pcsw_returns(data, monkeypatch):
    prompt_map = np.zeros((2, 64, 64), np.uint8)
    prompt_map[:, 20:40, 18:44] = 1  # one class-1 object on both slices
    seen = {}

    def fake_pcsw(coarse, spacing_mm, tau, constraints):
        seen.update(shape=coarse.shape, spacing=spacing_mm, tau=tau)
        return prompt_map, []

    monkeypatch.setattr(two_pass, "pcsw_label_volume", fake_pcsw)
    models = [_model(0)]
    result = predict_volume(models, data, SPACING, InferenceSettings(patch=64, tta=False, pcsw_tau=0.7))
    assert seen == {"shape": (3, 2, 64, 64), "spacing": SPACING, "tau": 0.7}
    assert result.prompt_map is prompt_map
    fused = mean_probabilities(models, data, InferenceSettings(patch=64, tta=False), prompt_map)
    assert np.array_equal(result.probabilities, fused) and not np.allclose(result.probabilities, result.coarse)


def test_several_models_are_averaged(data):
    settings = InferenceSettings(patch=64, tta=False)
    a, b = _model(0), _model(1)
    both = mean_probabilities([a, b], data, settings)
    assert np.allclose(both, (mean_probabilities([a], data, settings) + mean_probabilities([b], data, settings)) / 2, atol=1e-6)
