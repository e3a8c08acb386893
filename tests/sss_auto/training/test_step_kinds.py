"""The loop's steps chosen once per configuration: the same outputs as the method's steps with the same draws."""

from dataclasses import replace

import torch

from sss_auto.data.strong import jitter, strong_view
from sss_auto.method.clip_steps import clip_sss_step, clip_supervised_step
from sss_auto.method.steps import SSLSettings, sss_step, supervised_step, swap_diagnostic
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet
from sss_auto.training.ema import make_teacher
from sss_auto.training.step_kinds import ClipSteps, SliceSteps, step_kind
from tests.sss_auto.method.test_clip_steps import _batch as clip_batch
from tests.sss_auto.method.test_steps import _batch as slice_batch


def test_a_clip_length_chooses_clip_steps_and_none_slice_steps_with_the_run_s_views():
    assert step_kind(4, 2, "mild") == ClipSteps("mild")
    assert step_kind(0, 1, "full") == SliceSteps(1, "full")
    assert step_kind(0, 2, "full", "labeled") == SliceSteps(2, "full", "labeled")
    assert SliceSteps(2).swap_diagnostic and not ClipSteps().swap_diagnostic


def _student(**memory) -> SSSNet:
    torch.manual_seed(0)
    student = SSSNet(ModelConfig(1, 3, 64, "test", **memory))
    student.eval()  # no sampling: the comparisons below see the same network twice
    return student


def test_slice_steps_draw_their_views_from_the_loop_s_generator_and_diagnose_before_the_step():
    student, batch, settings = _student(), slice_batch(), SSLSettings(0.0)
    teacher = make_teacher(student)
    with torch.no_grad():
        out, found = SliceSteps(2).semi_supervised(batch, student, teacher, settings, torch.Generator().manual_seed(3), True)
        generator = torch.Generator().manual_seed(3)
        views = [strong_view(batch.x_w, generator) for _ in range(2)]
        expected_diagnostics = swap_diagnostic(batch, student, teacher, views, settings)
        expected = sss_step(batch, student, teacher, views, settings, generator)
        _, none = SliceSteps(1).semi_supervised(batch, student, teacher, settings, torch.Generator().manual_seed(3))
        supervised = SliceSteps(2).supervised(batch, student)
    torch.testing.assert_close(out.loss, expected.loss)
    assert found == expected_diagnostics and found and none == {}
    torch.testing.assert_close(supervised.loss, supervised_step(batch, student).loss)


def test_clip_steps_jitter_one_strong_clip_and_never_diagnose():
    student, batch, settings = _student(dfe_levels=(), memory_frames=2), clip_batch(), SSLSettings(0.0)
    teacher = make_teacher(student)
    with torch.no_grad():
        out, found = ClipSteps().semi_supervised(batch, student, teacher, settings, torch.Generator().manual_seed(5), True)
        generator = torch.Generator().manual_seed(5)
        strong = replace(batch, x_s=jitter(batch.x_w, generator))
        expected = clip_sss_step(strong, student, teacher, settings, generator)
        supervised = ClipSteps().supervised(batch, student)
    torch.testing.assert_close(out.loss, expected.loss)
    assert found == {}
    torch.testing.assert_close(supervised.loss, clip_supervised_step(batch, student).loss)
