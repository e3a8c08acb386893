"""The encoders' common interface, the input adapter, the coarse head and SAM-2 refinement, each on its own."""

import pytest
import torch

from sss_auto.networks.encoders import ConvEncoder, HieraEncoder, InputAdapter
from sss_auto.networks.heads import CoarseHead, SamRefiner
from sss_auto.networks.prompts import Prompts
from sss_auto.networks.sam2_parts import FEATURE_CHANNELS, build_sam2_parts


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    return build_sam2_parts("test", 64, None)


def _shapes(features):
    return [tuple(f.shape) for f in features]


def test_both_encoders_give_three_256_channel_maps_at_strides_4_8_16(parts):
    x = torch.randn(2, 3, 64, 96)
    expected = [(2, FEATURE_CHANNELS, 64 // s, 96 // s) for s in (4, 8, 16)]
    assert _shapes(ConvEncoder()(x)) == expected
    assert _shapes(HieraEncoder(parts.image_encoder)(torch.randn(2, 3, 64, 64))) == [
        (2, FEATURE_CHANNELS, 64 // s, 64 // s) for s in (4, 8, 16)]


def test_input_adapter_starts_as_the_mean_channel_in_all_three_outputs():
    x = torch.randn(2, 2, 8, 8)
    out = InputAdapter(2)(x)
    assert out.shape == (2, 3, 8, 8)
    for channel in range(3):
        assert torch.allclose(out[:, channel], x.mean(1), atol=1e-6)


def test_coarse_head_returns_class_logits_at_the_requested_size():
    features = [torch.randn(2, FEATURE_CHANNELS, 16 // f, 24 // f) for f in (1, 2, 4)]
    logits = CoarseHead(num_classes=5)(features, (64, 96))
    assert logits.shape == (2, 5, 64, 96) and torch.isfinite(logits).all()


def test_refiner_writes_only_the_prompted_sample_and_class(parts):
    refiner = SamRefiner(parts).eval()
    features = HieraEncoder(parts.image_encoder)(torch.randn(2, 3, 64, 64))
    prompts = Prompts.empty(2, 3)
    out_none = refiner(features, prompts, (64, 64))
    assert out_none.shape == (2, 3, 64, 64) and not out_none.any()  # no valid prompt: zeros, decoder not run
    prompts.valid[1, 2] = True
    prompts.boxes[1, 2] = torch.tensor([8.0, 10.0, 40.0, 44.0])
    prompts.points[1, 2] = torch.tensor([24.0, 27.0])
    out = refiner(features, prompts, (64, 64))
    nonzero = out.flatten(2).abs().sum(-1) > 0
    assert nonzero.tolist() == [[False, False, False], [False, False, True]]
