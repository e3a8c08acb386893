"""Pass 2 of 2d_memory: where propagation starts, its order in both directions, tiling and TTA as in 2d."""

import numpy as np
import torch

from sss_auto.inference import propagation
from sss_auto.inference.propagation import propagate, start_slices
from sss_auto.inference.settings import InferenceSettings
from sss_auto.inference.two_pass import mean_probabilities, predict_volume
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.pcsw import PCSWResult

SPACING = (3.0, 1.0, 1.0)


def _model(memory_frames: int, seed: int = 0) -> SSSNet:
    torch.manual_seed(seed)
    return SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(), memory_frames=memory_frames, memory_gate=False)).eval()


def _result(mask: np.ndarray | None) -> PCSWResult:
    return PCSWResult(mask, "window" if mask is not None else "none", None, 0.0, 0)


def test_propagation_starts_where_each_kept_object_is_largest_else_at_the_most_coarse_foreground():
    mask = np.zeros((6, 8, 8), bool)
    mask[1, :2, :2] = mask[2, :4, :4] = mask[3, :3, :3] = True
    other = np.zeros((6, 8, 8), bool)
    other[5, :1, :1] = True
    coarse = np.zeros((2, 6, 8, 8), np.float32)
    coarse[0] = 1.0
    assert start_slices([_result(mask), _result(None), _result(other)], coarse) == [2, 5]
    assert start_slices([_result(None)], coarse) == [], "no foreground anywhere: nothing to propagate"
    coarse[:, 4, :3, :3] = [[[0.0]], [[1.0]]]
    assert start_slices([_result(None)], coarse) == [4]


def test_without_memory_propagation_is_the_2d_sliding_window_with_tiles_and_mirroring():
    data = np.random.default_rng(0).normal(size=(1, 3, 80, 72)).astype(np.float32)  # larger than the patch: tiles
    model = _model(0)
    settings = InferenceSettings(patch=64, tta=True, batch_size=3)
    np.testing.assert_allclose(propagate(model, data, settings, start=1), mean_probabilities([model], data, settings),
                               atol=1e-5)


def test_both_directions_start_at_the_prompted_start_slice_and_later_slices_read_memory(monkeypatch):
    calls = []
    real = propagation.segment_clip

    def recording(net, clip, prompts, index, *args, **kwargs):
        calls.append((index[0].tolist(), None if prompts is None else bool(prompts.valid.any())))
        return real(net, clip, prompts, index, *args, **kwargs)

    monkeypatch.setattr(propagation, "segment_clip", recording)
    data = np.random.default_rng(1).normal(size=(1, 5, 64, 64)).astype(np.float32)
    prompt_map = np.zeros((5, 64, 64), np.uint8)
    prompt_map[2, 10:30, 10:30] = 1
    model = _model(2)
    probs = propagate(model, data, InferenceSettings(patch=64, tta=False), start=2, prompt_map=prompt_map)
    assert calls == [([2, 3, 4], True), ([2, 1, 0], True)], "up then down, each conditioned on the start's prompts"
    assert probs.shape == (3, 5, 64, 64) and np.allclose(probs.sum(0), 1.0, atol=1e-5)
    no_memory = mean_probabilities([model], data, InferenceSettings(patch=64, tta=False))
    assert not np.allclose(probs[:, 4], no_memory[:, 4], atol=1e-4), "slices after the start attend to memories"


def test_predict_volume_of_a_memory_model_propagates_from_pcsw_and_keeps_pass_1(monkeypatch):
    data = np.random.default_rng(2).normal(size=(1, 4, 64, 64)).astype(np.float32)
    model = _model(2)
    starts = []
    monkeypatch.setattr("sss_auto.inference.two_pass.start_slices", lambda results, coarse: starts.append(1) or [1])
    result = predict_volume([model], data, SPACING, InferenceSettings(patch=64, tta=False))
    assert starts == [1]
    np.testing.assert_allclose(result.coarse, mean_probabilities([model], data, InferenceSettings(patch=64, tta=False)))
    np.testing.assert_allclose(result.probabilities, propagate(model, data, InferenceSettings(patch=64, tta=False), 1,
                                                               result.prompt_map), atol=1e-6)
