import numpy as np

from sss_auto.data import augment
from sss_auto.prompting.from_masks import prompts_from_label_maps


def test_prompts_follow_rotation_scaling_and_mirroring_of_the_weak_view():
    np.random.seed(4)
    size, patch = augment.sampling_size(64), 64
    images = np.zeros((6, 1, size, size), np.float32)
    objects = np.zeros((6, size, size), np.int16)
    for b in range(6):
        y, x = 20 + 3 * b, 30 - 2 * b
        images[b, 0, y:y + 14, x:x + 24] = 1.0
        objects[b, y:y + 14, x:x + 24] = 1
    transform = augment.spatial_and_intensity(patch, intensity=False, p_spatial=1.0)
    x_w, objects_w = augment.apply(transform, images, objects)
    assert x_w.shape == (6, 1, 64, 64) and objects_w.shape == (6, 64, 64)
    prompts = prompts_from_label_maps(objects_w, 1)
    checked = 0
    for b in range(6):
        bright = x_w[b, 0] > 0.5
        if not bright.any():  # rotated or scaled out of the patch: nothing to compare
            assert not (objects_w[b] == 1).any() or (objects_w[b] == 1).sum() < 20, "the object left with the image"
            continue
        checked += 1
        overlap = np.logical_and(bright, objects_w[b] == 1).sum() / np.logical_or(bright, objects_w[b] == 1).sum()
        assert overlap > 0.8, "the object map moved with the image"
        ys, xs = np.nonzero(bright)
        box = prompts.boxes[b, 0].numpy()
        assert np.all(np.abs(box - [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) <= 2)
        px, py = prompts.points[b, 0].numpy().astype(int)
        assert bright[py, px]
    assert checked >= 4, "most objects stay in the patch, so the check ran"


def test_same_seed_gives_the_same_views():
    images = np.random.default_rng(0).normal(size=(2, 1, 80, 80)).astype(np.float32)
    labels = np.zeros((2, 80, 80), np.int16)
    transform = augment.spatial_and_intensity(64, p_spatial=1.0)
    np.random.seed(1)
    a, _ = augment.apply(transform, images.copy(), labels)
    np.random.seed(1)
    b, _ = augment.apply(transform, images.copy(), labels)
    np.testing.assert_array_equal(a, b)
