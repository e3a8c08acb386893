import numpy as np
import torch

from sss_auto.data.batch import TrainBatch
from sss_auto.data.pseudo_label_pool import IGNORE, masked_labels
from sss_auto.method.self_training import confidence_sums, label_volume, thresholds_from_means
from sss_auto.method.steps import labeled_loss, self_training_step
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.from_masks import prompts_from_label_maps


def _probabilities():
    """(3, 1, 2, 3) probabilities: background sure on the left, class 1 unsure in the middle, class 2 on the right."""
    p = np.zeros((3, 1, 2, 3), np.float32)
    p[:, 0, :, 0] = np.array([0.9, 0.05, 0.05])[:, None]
    p[:, 0, :, 1] = np.array([0.3, 0.6, 0.1])[:, None]
    p[:, 0, :, 2] = np.array([0.1, 0.1, 0.8])[:, None]
    return p


def test_label_volume_takes_the_argmax_and_its_probability():
    label, confidence = label_volume(_probabilities())
    assert label.dtype == np.int8 and confidence.dtype == np.float16
    assert label[0].tolist() == [[0, 1, 2], [0, 1, 2]]
    np.testing.assert_allclose(confidence[0, 0], [0.9, 0.6, 0.8], atol=1e-3)


def test_an_unready_class_gets_no_confidence_where_it_is_predicted_or_ranked_highest():
    unready = np.array([False, True, False])
    shares = np.array([0.0, 0.0, 0.0])
    label, confidence = label_volume(_probabilities(), unready, shares)
    assert label[0, 0].tolist() == [0, 1, 2], "the argmax stays; only its confidence goes"
    assert confidence[0, 0].tolist() == [np.float16(0.9), 0.0, np.float16(0.8)]
    p = _probabilities()
    p[:, 0, 1, 2] = [0.1, 0.4, 0.5]  # class 2 wins here, but class 1 is ranked high: the top share of p_1
    shares = np.array([0.0, 2 / 6, 0.0])  # 2 of 6 pixels: the two class-1 argmax pixels are the top two already
    _, confidence = label_volume(p, unready, shares)
    assert confidence[0, 1, 2] > 0
    shares = np.array([0.0, 3 / 6, 0.0])  # the third-ranked p_1 pixel (0.4) is ignored too
    _, confidence = label_volume(p, unready, shares)
    assert confidence[0, 1, 2] == 0 and confidence[0, 0, 2] > 0


def test_thresholds_adapt_to_each_class_mean_confidence_or_stay_global():
    label, confidence = label_volume(_probabilities())
    counts, sums = confidence_sums(label, confidence, 4)
    assert counts.tolist() == [2, 2, 2, 0]
    adaptive = thresholds_from_means(counts, sums, 0.9, "class_adaptive")
    np.testing.assert_allclose(adaptive, [0.9, 0.9 * 0.6 / 0.9, 0.9 * 0.8 / 0.9, 0.9], atol=1e-3)
    assert thresholds_from_means(counts, sums, 0.9, "global").tolist() == [0.9] * 4
    assert thresholds_from_means(np.zeros(3), np.zeros(3), 0.95, "class_adaptive").tolist() == [0.95] * 3


def test_masked_labels_ignore_pixels_below_their_class_threshold_never_turn_them_into_background():
    label = np.array([[0, 1, 2, 1]], np.int8)
    confidence = np.array([[0.99, 0.5, 0.7, 0.3]], np.float16)
    out = masked_labels(label, confidence, np.array([0.95, 0.4, 0.8]))
    assert out.dtype == np.int16 and out.tolist() == [[0, 1, IGNORE, IGNORE]]


def _batch(y_u):
    rng = np.random.default_rng(0)
    y = np.zeros((2, 64, 64), np.int64)
    y[0, 10:30, 12:40] = 1
    y[1, 30:50, 20:44] = 2
    x = (y[:, None] > 0).astype(np.float32) * 2 + rng.normal(0, 0.3, (2, 1, 64, 64)).astype(np.float32)
    y_u = torch.from_numpy(y_u)
    return TrainBatch(torch.from_numpy(x), torch.from_numpy(y), prompts_from_label_maps(y, 2), torch.from_numpy(x[::-1].copy()),
                      prompts_from_label_maps(y_u.clamp_min(0).numpy(), 2), y_u)


def test_self_training_step_learns_the_pseudo_labels_and_ignores_the_ignored_pixels():
    torch.manual_seed(0)
    student = SSSNet(ModelConfig(1, 3, 64, "test"))
    y_u = np.full((2, 64, 64), IGNORE, np.int64)
    batch = _batch(y_u)
    out = self_training_step(batch, student, 0.5)
    assert out.metrics["mask_ratio"] == 0.0 and out.metrics["loss_u"] == 0.0, "nothing to learn where all is ignored"
    with torch.no_grad():
        labeled = student(batch.x_l, batch.prompts_l)
    assert abs(out.metrics["loss"] - 0.5 * float(labeled_loss(labeled.coarse, labeled.fused, batch.y_l))) < 1e-5
    y_u = np.zeros((2, 64, 64), np.int64)
    y_u[:, :, :32] = IGNORE
    y_u[0, 30:50, 40:60] = 2
    first = self_training_step(_batch(y_u), student, 0.5)
    assert first.metrics["mask_ratio"] == 0.5 and first.metrics["plc_2"] > 0
    as_background = self_training_step(_batch(np.maximum(y_u, 0)), student, 0.5)
    assert as_background.metrics["mask_ratio"] == 1.0
    assert abs(as_background.metrics["loss_u"] - first.metrics["loss_u"]) > 1e-4, "ignored is not background"
    optimizer = torch.optim.AdamW(student.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        out = self_training_step(_batch(y_u), student, 0.5)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.metrics["loss_u"])
    assert losses[-1] < 0.8 * losses[0]
    assert out.labeled_logits.shape == (2, 3, 64, 64)
