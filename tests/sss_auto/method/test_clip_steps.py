"""Losses on clips through the slice memory: labeled slices learn from memory, pseudo labels per slice."""

import pytest
import torch

from sss_auto.data.batch import ClipBatch
from sss_auto.method.clip_steps import clip_labeled_loss, clip_losses, clip_sss_step, clip_supervised_step
from sss_auto.method.steps import SSLSettings, labeled_loss
from sss_auto.networks.clip import segment_clip
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet
from sss_auto.networks.prompts import Prompts
from sss_auto.training.ema import make_teacher


def _batch() -> ClipBatch:
    torch.manual_seed(1)
    y = torch.zeros(2, 3, 64, 64, dtype=torch.long)
    y[:, :, 20:40, 18:44] = 1
    y[:, :, 28:34, 26:30] = 2
    prompts = Prompts.empty(2, 2)
    prompts.valid[:, 0] = True
    prompts.boxes[:, 0] = torch.tensor([18.0, 20.0, 44.0, 40.0])
    prompts.points[:, 0] = torch.tensor([22.0, 24.0])
    x = y[:, :, None].float() + 0.1 * torch.randn(2, 3, 1, 64, 64)
    index = torch.arange(3).repeat(2, 1)
    weak = torch.randn(2, 3, 1, 64, 64)
    return ClipBatch(x, y, prompts, index, weak, weak + 0.05 * torch.randn_like(weak), None, index)


def test_clip_losses_average_the_2d_losses_over_slices_and_train_the_memory():
    torch.manual_seed(0)
    student = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(), memory_frames=2, memory_gate=False))
    teacher = make_teacher(student)
    b = _batch()
    student.eval()
    with torch.no_grad():
        labeled_only, logits = clip_labeled_loss(b, student)
        outputs = segment_clip(student, b.x_l, b.prompts_l, b.index_l)
        expected = torch.stack([labeled_loss(o.coarse, o.fused, b.y_l[:, t]) for t, o in enumerate(outputs)]).mean()
        torch.testing.assert_close(labeled_only, expected)
        torch.testing.assert_close(logits[1], outputs[1].fused[0]), "logits clip-major: clip 0, slice 1"
        full = clip_losses(b, student, teacher, SSLSettings(0.0, unlabeled_weight=0.5))
        weak = segment_clip(teacher, b.x_w, None, b.index_u)
    y_hat = torch.stack([o.fused.argmax(1) for o in weak], dim=1).flatten(0, 1)
    assert torch.equal(full.y_hat, y_hat) and bool(full.confident.all()), "pseudo labels: the teacher's clip, per slice"
    torch.testing.assert_close(full.loss, 0.5 * full.loss_l + 0.5 * full.loss_u)
    student.train()
    out = clip_losses(b, student, teacher, SSLSettings(0.5), torch.Generator().manual_seed(0))
    out.loss.backward()
    grads = [p.grad for n, p in student.named_parameters() if n.startswith("memory.memory_attention")]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "later slices' losses reach the memory attention"
    assert all(p.grad is None for p in teacher.parameters())


def test_clip_steps_report_what_the_training_loop_reads_per_slice():
    torch.manual_seed(0)
    student = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(), memory_frames=2, memory_gate=False))
    teacher = make_teacher(student)
    b = _batch()
    supervised = clip_supervised_step(b, student)
    assert supervised.labeled_logits.shape == (6, 3, 64, 64) and supervised.pseudo_labels is None
    assert set(supervised.metrics) == {"loss", "loss_l"}
    out = clip_sss_step(b, student, teacher, SSLSettings(0.5), torch.Generator().manual_seed(0))
    assert out.pseudo_labels.y_hat.shape == out.pseudo_labels.conf.shape == (6, 64, 64)
    assert out.pseudo_labels.mean_probabilities.shape == (3,)
    assert {"loss", "loss_l", "loss_u", "mask_ratio"} <= set(out.metrics)
    torch.testing.assert_close(out.pseudo_labels.mean_probabilities.sum(), torch.tensor(1.0))
    gated = clip_losses(b, student, teacher, SSLSettings(0.01, unready=torch.tensor([False, True, True]),
                                                          unready_shares=torch.tensor([0.0, 1.0, 1.0])))
    assert not bool(gated.confident[gated.y_hat > 0].any()), "an unready class is kept out of the unlabeled loss"
    student.eval()
    lesions_first = torch.tensor([1e-3, 1.0, 1.0])  # background ranked last: every pixel a pair of the two lesions
    with torch.no_grad():  # clips take pair labels too: a threshold no pixel reaches alone leaves only the pairs
        tau = float(clip_losses(b, student, teacher, SSLSettings(0.5, alignment=lesions_first)).conf.max()) + 1e-3
        alone = clip_losses(b, student, teacher, SSLSettings(tau, alignment=lesions_first))
        paired = clip_losses(b, student, teacher, SSLSettings(tau, alignment=lesions_first, unlabeled_ce="pairs"))
    assert alone.loss_u == 0.0 and paired.loss_u > 0.0


def test_dfe_on_clips_pairs_each_strong_slice_with_itself_and_starts_as_plain_weak_to_strong():
    torch.manual_seed(0)
    plain = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(), memory_frames=2, memory_gate=False))
    student = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(1, 2), memory_frames=2, memory_gate=False))
    assert student.load_state_dict(plain.state_dict(), strict=False).unexpected_keys == []  # + DFE at gamma 0
    teacher, b = make_teacher(plain), _batch()
    plain.eval()
    student.eval()
    with torch.no_grad():
        reference = clip_losses(b, plain, teacher, SSLSettings(0.0), torch.Generator().manual_seed(1))
        at_zero = clip_losses(b, student, teacher, SSLSettings(0.0), torch.Generator().manual_seed(1))
        for gate in student.dfe.gates.values():
            gate.fill_(0.5)
        opened = clip_losses(b, student, teacher, SSLSettings(0.0), torch.Generator().manual_seed(1))
    torch.testing.assert_close(at_zero.loss_u, reference.loss_u)
    assert not torch.allclose(opened.loss_u, reference.loss_u), "an open gate changes the strong clip's prediction"
    student.train()
    clip_losses(b, student, teacher, SSLSettings(0.0), torch.Generator().manual_seed(1)).loss.backward()
    assert all(gate.grad is not None and gate.grad.abs() > 0 for gate in student.dfe.gates.values())
    with pytest.raises(ValueError, match="strong_pair"):
        clip_losses(b, student, teacher, SSLSettings(0.0, dfe_inputs="weak_strong"))
