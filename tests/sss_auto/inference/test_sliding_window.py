import numpy as np
import torch

from sss_auto.inference.sliding_window import gaussian_weights, predict_slices, tile_starts


def test_tiles_cover_the_extent_with_overlap():
    assert tile_starts(64, 64) == [0]
    assert tile_starts(100, 64) == [0, 18, 36]
    starts = tile_starts(200, 64)
    assert starts[0] == 0 and starts[-1] == 200 - 64
    assert all(b - a <= 32 for a, b in zip(starts, starts[1:]))


def test_gaussian_peaks_at_the_centre_and_is_never_zero():
    w = gaussian_weights(32)
    assert w.max() == 1.0 and w.min() > 0
    assert w[15:17, 15:17].min() == w.max()
    assert w[0, 0] < w[16, 0] < w[16, 16]


def _position_logits(x: torch.Tensor, prompts) -> torch.Tensor:
    """Two classes whose logits are the image itself and its negation: a pure per-pixel function."""
    return torch.cat([-x[:, :1], x[:, :1]], 1) * 5


def test_stitching_an_image_larger_than_the_patch_reproduces_a_per_pixel_function():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 2, 90, 75)).astype(np.float32)
    probs = predict_slices(_position_logits, image, patch=32, num_classes=2, tta=False)
    expected = torch.from_numpy(image[0]).mul(10).sigmoid().numpy()  # softmax of (−5x, 5x) for class 1
    np.testing.assert_allclose(probs[1], expected, atol=1e-5)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)


def test_mirror_tta_is_undone():
    calls = []

    def left_half_is_foreground(x, prompts):
        """Not flip-equivariant: marks the tile's left half, wherever the content is."""
        calls.append(x.shape[0])
        logits = torch.zeros(x.shape[0], 2, *x.shape[-2:])
        logits[:, 1, :, : x.shape[-1] // 2] = 10
        logits[:, 0, :, x.shape[-1] // 2:] = 10
        return logits

    image = np.zeros((1, 1, 32, 32), np.float32)
    plain = predict_slices(left_half_is_foreground, image, 32, 2, tta=False)
    mirrored = predict_slices(left_half_is_foreground, image, 32, 2, tta=True)
    assert (plain[1, 0, :, :16] > 0.99).all()
    # with TTA, the x-mirrored passes mark the right half, so each pixel is foreground in half of the 4 passes
    np.testing.assert_allclose(mirrored[1], 0.5, atol=1e-3)
    assert len(calls) == 1 + 4


def test_prompt_maps_are_cut_and_mirrored_with_the_tiles():
    seen = []

    def record(x, prompts):
        seen.append((x[0, 0].clone(), prompts.boxes[0, 0].clone(), prompts.valid[0, 0].item()))
        return torch.zeros(x.shape[0], 2, *x.shape[-2:])

    image = np.zeros((1, 1, 32, 32), np.float32)
    image[0, 0, 4:10, 2:8] = 1.0
    maps = (image[0] > 0).astype(np.uint8)
    predict_slices(record, image, 32, 2, prompt_maps=maps, tta=True)
    for x, box, valid in seen:
        ys, xs = torch.nonzero(x > 0, as_tuple=True)
        assert valid
        assert box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
