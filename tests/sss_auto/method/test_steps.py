from dataclasses import replace

import numpy as np
import pytest
import torch

from sss_auto.data.batch import TrainBatch
from sss_auto.data.strong import strong_view
from sss_auto.method.readiness import background_band_mask, labeled_class_dice
from sss_auto.method.steps import (SSLSettings, foreground_pairs, pair_targets, pseudo_labels_of, sss_step,
                                   supervised_step, swap_diagnostic, unlabeled_prompts)
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.from_masks import prompts_from_label_maps
from sss_auto.training.ema import make_teacher


def _batch(size=64):
    rng = np.random.default_rng(0)
    y = np.zeros((2, size, size), np.int64)
    y[0, 10:30, 12:40] = 1
    y[1, 30:50, 20:44] = 2
    x = (y[:, None] > 0).astype(np.float32) * 2 + rng.normal(0, 0.3, (2, 1, size, size)).astype(np.float32)
    u = np.roll(x, 5, axis=-1)
    objects = np.roll(y, 5, axis=-1)
    return TrainBatch(torch.from_numpy(x), torch.from_numpy(y), prompts_from_label_maps(y, 2),
                      torch.from_numpy(u), prompts_from_label_maps(objects, 2))


def _models_batch_views(n_views=2):
    """A seeded test-variant student, its teacher, the fixed batch and seeded strong views."""
    torch.manual_seed(0)
    student = SSSNet(ModelConfig(1, 3, 64, "test"))
    b = _batch()
    return student, make_teacher(student), b, [strong_view(b.x_w, torch.Generator().manual_seed(k)) for k in range(n_views)]


@pytest.mark.parametrize("use_dfe", [True, False])
def test_sss_loss_goes_down_on_a_fixed_batch(use_dfe):
    torch.manual_seed(0)
    student = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(1, 2) if use_dfe else ()))
    teacher = make_teacher(student)
    optimizer = torch.optim.AdamW(student.parameters(), lr=2e-3)
    b = _batch()
    views = [strong_view(b.x_w, torch.Generator().manual_seed(k)) for k in range(2)]  # fixed views too
    losses = []
    for _ in range(10):
        out = sss_step(b, student, teacher, views, SSLSettings(0.0))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        teacher.load_state_dict(student.state_dict())
        losses.append(out.metrics["loss"])
    per_class = {f"{share}_{k}" for share in ("pl", "plc", "pls") for k in range(3)}
    assert set(out.metrics) == {"loss", "loss_l", "loss_u", "mask_ratio"} | per_class
    assert out.metrics["mask_ratio"] == 1.0  # confidence 0 keeps every pixel
    assert all(out.metrics[f"pl_{k}"] == out.metrics[f"plc_{k}"] for k in range(3))
    assert abs(sum(out.metrics[f"pl_{k}"] for k in range(3)) - 1) < 1e-9
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    if use_dfe:  # DFE earns a gate through the unlabeled loss
        assert all(abs(v) > 1e-3 for v in student.dfe.gate_values().values())


def test_supervised_step_trains_the_refiner_through_the_prompts_and_no_dfe_gradient():
    torch.manual_seed(0)
    student = SSSNet(ModelConfig(1, 3, 64, "test"))
    out = supervised_step(_batch(), student)
    out.loss.backward()
    assert student.refiner.mask_decoder.output_upscaling[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in student.dfe.parameters())


def test_unlabeled_loss_reaches_dfe_gates_but_not_the_teacher():
    student, teacher, b, views = _models_batch_views(n_views=1)
    out = sss_step(b, student, teacher, views, SSLSettings(0.0), torch.Generator().manual_seed(0))
    out.loss.backward()
    assert all(gate.grad is not None and gate.grad.abs() > 0 for gate in student.dfe.gates.values())
    assert all(p.grad is None for p in teacher.parameters())


def test_strong_pair_predictions_do_not_depend_on_the_weak_features_and_weak_strong_ones_do():
    student, teacher, b, views = _models_batch_views()
    with torch.no_grad():
        for gate in student.dfe.gates.values():
            gate.fill_(1.0)
    pair = swap_diagnostic(b, student, teacher, views, SSLSettings(0.0, "strong_pair"))
    assert pair["swap_rise"] == 0.0  # not one weak feature reaches the strong-view prediction
    weak = swap_diagnostic(b, student, teacher, views, SSLSettings(0.0, "weak_strong"))
    assert abs(weak["swap_rise"]) > 1e-4
    perturbed = make_teacher(student)  # another teacher: other pseudo labels, other weak features
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(0.05 * torch.randn_like(p))
    f = student.encode(torch.cat([view.x for view in views]))
    split = [[x[:2] for x in f], [x[2:] for x in f]]
    a = student.dfe.enhance(split, teacher.encode(b.x_w), "strong_pair")
    c = student.dfe.enhance(split, perturbed.encode(b.x_w), "strong_pair")
    for x, y in zip(a[0] + a[1], c[0] + c[1]):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_at_gate_zero_the_step_is_plain_weak_to_strong():
    torch.manual_seed(0)
    with_dfe = SSSNet(ModelConfig(1, 3, 64, "test"))
    torch.manual_seed(0)
    without = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=()))  # DFE is built last: the same other weights
    b = _batch()
    views = [strong_view(b.x_w, torch.Generator().manual_seed(k)) for k in range(2)]
    for mode in ("strong_pair", "weak_strong"):
        a = sss_step(b, with_dfe, make_teacher(with_dfe), views, SSLSettings(0.5, mode)).metrics
        c = sss_step(b, without, make_teacher(without), views, SSLSettings(0.5, mode)).metrics
        assert a["loss"] == pytest.approx(c["loss"], abs=1e-6) and a["loss_u"] == pytest.approx(c["loss_u"], abs=1e-6)


def test_one_batched_student_forward_gives_the_losses_of_separate_forwards():
    from sss_auto.method.losses import dice_ce_loss
    from sss_auto.method.steps import labeled_loss

    student, teacher, b, views = _models_batch_views()
    with torch.no_grad():
        for gate in student.dfe.gates.values():
            gate.fill_(0.7)  # DFE active, so the views' features really differ from the encoder's
    batched = sss_step(b, student, teacher, views, SSLSettings(0.5, "weak_strong"))
    with torch.no_grad():  # the same iteration written view by view
        out_l = student(b.x_l, b.prompts_l)
        f_w = teacher.encode(b.x_w)
        conf, y_hat = teacher.decode(f_w, b.prompts_u, (64, 64)).fused.softmax(1).max(1)
        losses_u = []
        for view in views:
            y_mix, conf_mix = view.mix_targets(y_hat, conf)
            features = student.dfe.enhance([student.encode(view.x)], f_w, "weak_strong")[0]
            logits = student.decode(features, b.prompts_u, (64, 64)).fused
            losses_u.append(dice_ce_loss(logits, y_mix, valid=conf_mix >= 0.5))
    assert abs(batched.metrics["loss_l"] - labeled_loss(out_l.coarse, out_l.fused, b.y_l).item()) < 1e-5
    assert abs(batched.metrics["loss_u"] - (sum(losses_u) / 2).item()) < 1e-5


def test_unready_classes_leave_the_unlabeled_loss_and_the_step_reports_labeled_dice():
    student, teacher, b, views = _models_batch_views()
    plain = sss_step(b, student, teacher, views, SSLSettings(1e-6))
    assert labeled_class_dice(plain.labeled_logits, b.y_l).shape == (3,) and plain.metrics["mask_ratio"] == 1.0
    none_unready = SSLSettings(1e-6, unready=torch.tensor([False, False, False]), unready_shares=torch.ones(3))
    assert sss_step(b, student, teacher, views, none_unready).metrics["loss_u"] == pytest.approx(plain.metrics["loss_u"])
    all_pixels = SSLSettings(1e-6, unready=torch.tensor([False, True, True]), unready_shares=torch.ones(3))
    gated = sss_step(b, student, teacher, views, all_pixels)
    assert gated.metrics["mask_ratio"] == 0.0 and gated.metrics["loss_u"] == 0.0  # every pixel is plausible for one
    assert labeled_class_dice(supervised_step(b, student).labeled_logits, b.y_l).shape == (3,)


def test_the_foreground_band_masks_exactly_the_background_pseudo_labels_in_it():
    student, teacher, b, views = _models_batch_views()
    with torch.no_grad():
        probs = teacher.decode(teacher.encode(b.x_w), unlabeled_prompts(b), tuple(b.x_w.shape[-2:])).fused.softmax(1)
    shares = torch.tensor([0.0, 0.3, 0.3], dtype=torch.float64)
    conf, y_hat, conf_loss = pseudo_labels_of(probs, SSLSettings(1e-6, band_shares=shares))
    band = background_band_mask(probs, y_hat, shares)
    assert band.any() and torch.equal(conf_loss == 0, band), "only background pseudo labels inside the band are ignored"
    assert torch.equal(conf_loss[~band], conf[~band])
    banded = sss_step(b, student, teacher, views, SSLSettings(1e-6, band_shares=shares))
    assert banded.metrics["mask_ratio"] == pytest.approx(1 - band.float().mean().item())


def test_foreground_pairs_are_the_pixels_two_lesion_classes_share_above_the_threshold():
    probs = torch.tensor([[0.50, 0.30, 0.15, 0.05],   # background first: no pair
                          [0.05, 0.50, 0.40, 0.05],   # 1 or 2: pair, 0.90
                          [0.30, 0.45, 0.05, 0.20],   # 1, then background: no pair
                          [0.01, 0.96, 0.02, 0.01],   # 1 alone passes: its pair is not needed
                          [0.10, 0.35, 0.05, 0.50]])  # 3 or 1: pair, 0.85
    probs = probs.T.reshape(1, 4, 1, 5)
    ssl = SSLSettings(0.8)
    conf, y_hat, conf_loss = pseudo_labels_of(probs, ssl)
    second, pair_conf = foreground_pairs(probs, ssl, conf_loss)
    assert second[0, 0].tolist() == [1, 2, 0, 2, 1]
    torch.testing.assert_close(pair_conf[0, 0], torch.tensor([0.0, 0.9, 0.0, 0.98, 0.85]))
    valid = conf >= 0.8
    second, pair_valid = pair_targets(second, pair_conf, y_hat, valid, 0.8)
    assert pair_valid[0, 0].tolist() == [False, True, False, False, True]
    kept_out = conf_loss.clone()
    kept_out[0, 0, 1] = 0.0  # a gate keeps pixel 1 out: so does its pair
    assert foreground_pairs(probs, ssl, kept_out)[1][0, 0, 1] == 0.0
    per_class = torch.tensor([0.95, 0.95, 0.95, 0.8])  # the first class's threshold decides
    assert pair_targets(second, pair_conf, y_hat, valid, per_class)[1][0, 0].tolist() == [False] * 4 + [True]


def test_pair_labels_reach_the_unlabeled_loss_only_where_the_teacher_splits_two_lesion_classes():
    student, teacher, b, views = _models_batch_views()
    with torch.no_grad():
        probs = teacher.decode(teacher.encode(b.x_w), unlabeled_prompts(b), tuple(b.x_w.shape[-2:])).fused.softmax(1)
    lesions_first = torch.tensor([1e-3, 1.0, 1.0])  # an alignment that ranks background last everywhere
    settings = SSLSettings(0.5, alignment=lesions_first)
    conf, y_hat, conf_loss = pseudo_labels_of(probs, settings)
    _, pair_conf = foreground_pairs(probs, settings, conf_loss)
    tau = float(conf.max()) + 1e-3  # no pixel passes alone; every pair of the two lesion classes does
    assert bool((pair_conf > tau).all())
    without = sss_step(b, student, teacher, views, replace(settings, confidence=tau))
    with_pairs = sss_step(b, student, teacher, views, replace(settings, confidence=tau, unlabeled_ce="pairs"))
    assert without.metrics["loss_u"] == 0.0 and with_pairs.metrics["loss_u"] > 0.0
    assert "pair_ratio" not in without.metrics and with_pairs.metrics["pair_ratio"] == 1.0
    assert with_pairs.metrics["loss_l"] == pytest.approx(without.metrics["loss_l"])
