import numpy as np
import torch

from sss_auto.data.loader import TrainBatch
from sss_auto.data.strong import strong_view
from sss_auto.networks.model import ModelConfig, SSSNet
from sss_auto.prompting.from_masks import prompts_from_label_maps
from sss_auto.training.ema import make_teacher
from sss_auto.training.steps import sss_step, supervised_step


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


def test_sss_loss_goes_down_on_a_fixed_batch(use_dfe=True):
    torch.manual_seed(0)
    student = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(1, 2) if use_dfe else ()))
    teacher = make_teacher(student)
    optimizer = torch.optim.AdamW(student.parameters(), lr=2e-3)
    b = _batch()
    losses = []
    for step in range(10):
        g = torch.Generator().manual_seed(step)
        out = sss_step(b, student, teacher, [strong_view(b.x_w, g) for _ in range(2)], confidence=0.0)
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


def test_supervised_step_trains_the_refiner_through_the_prompts_and_no_dfe_gradient():
    torch.manual_seed(0)
    student = SSSNet(ModelConfig(1, 3, 64, "test"))
    out = supervised_step(_batch(), student)
    out.loss.backward()
    assert student.refiner.mask_decoder.output_upscaling[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in student.dfe.parameters())


def test_unlabeled_loss_reaches_dfe_but_not_the_teacher():
    student, teacher, b, views = _models_batch_views(n_views=1)
    out = sss_step(b, student, teacher, views, confidence=0.0)
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.dfe.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_one_batched_student_forward_gives_the_losses_of_separate_forwards():
    from sss_auto.training.losses import dice_ce_loss
    from sss_auto.training.steps import labeled_loss

    student, teacher, b, views = _models_batch_views()
    batched = sss_step(b, student, teacher, views, confidence=0.5)
    with torch.no_grad():  # the same iteration written view by view
        out_l = student(b.x_l, b.prompts_l)
        f_w = teacher.encode(b.x_w)
        conf, y_hat = teacher.decode(f_w, b.prompts_u, (64, 64)).fused.softmax(1).max(1)
        losses_u = []
        for view in views:
            y_mix, conf_mix = view.mix_targets(y_hat, conf)
            logits = student.decode(student.dfe(f_w, student.encode(view.x)), b.prompts_u, (64, 64)).fused
            losses_u.append(dice_ce_loss(logits, y_mix, valid=conf_mix >= 0.5))
    assert abs(batched.metrics["loss_l"] - labeled_loss(out_l.coarse, out_l.fused, b.y_l).item()) < 1e-5
    assert abs(batched.metrics["loss_u"] - (sum(losses_u) / 2).item()) < 1e-5
