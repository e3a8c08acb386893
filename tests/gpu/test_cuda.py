"""The CUDA paths: bf16 autocast step, memory estimate vs the CUDA allocator, train/resume/predict and NCCL.

Skipped without a CUDA device (CI has none); run with `python -m pytest -m gpu tests/gpu` on a GPU
machine (benchmarks/gpu_checks.sh does, and records the results).
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sss_auto.data.strong import strong_view
from sss_auto.io.checkpoint import load_checkpoint
from sss_auto.io.nifti import read_header
from sss_auto.method.steps import SSLSettings, sss_step
from sss_auto.training.loop import mixed_precision
from tests.conftest import installed_script, run_command
from tests.sss_auto.method.test_steps import _models_batch_views

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
REPO = Path(__file__).resolve().parents[2]
FAST = ["--iters-per-epoch", "3", "--warmup-epochs", "1", "--ssl-start", "warmup", "--batch-size", "2", "--num-workers", "2", "--no-progress"]


def test_sss_step_under_bf16_autocast_on_cuda_matches_the_fp32_cpu_step():
    student, teacher, b, views = _models_batch_views()
    reference = sss_step(b, student, teacher, views, SSLSettings(0.5))
    reference.loss.backward()

    student_gpu, teacher_gpu, b_gpu = copy.deepcopy(student).cuda(), copy.deepcopy(teacher).cuda(), b.to("cuda")
    student_gpu.zero_grad(set_to_none=True)
    views_gpu = [strong_view(b_gpu.x_w, torch.Generator().manual_seed(k)) for k in range(2)]
    with mixed_precision("cuda"):
        out = sss_step(b_gpu, student_gpu, teacher_gpu, views_gpu, SSLSettings(0.5))
    out.loss.backward()
    assert out.loss.dtype == torch.float32, "losses are computed in float32 under autocast"
    for key in ("loss", "loss_l", "loss_u"):
        assert out.metrics[key] == pytest.approx(reference.metrics[key], rel=0.05, abs=0.02), key
    grads = [p.grad for p in student_gpu.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in teacher_gpu.parameters())


@pytest.mark.parametrize("amp", [False, True])
def test_memory_estimate_bounds_the_cuda_allocator_peak_of_one_step(amp):
    """The planner's estimate vs max_memory_allocated of one real step (Hiera-T, 256², batch 2, 6 classes).

    Full precision: within −25 % … +50 % (the CPU band). bf16 autocast (what the trainer runs): the
    planner's mixed-precision estimate must not fall short of the measured peak, and the float32 one
    must not be more than 2.5 times it.
    """
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "measure_step_memory.py"), "--device", "cuda",
                          "--variant", "tiny", "--patch", "256", "--batch", "2", "--classes", "6"] + (["--amp"] if amp else []),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(result)
    if amp:
        assert result["estimated_bytes"] >= result["measured_bytes"], result
        assert result["estimated_full_precision_bytes"] <= 2.5 * result["measured_bytes"], result
    else:
        assert -0.25 < result["relative_error"] < 0.5, result


def test_train_continue_and_predict_on_cuda(prepared, dataset_dir, tmp_path):
    env, results = prepared
    first = run_command(["sss_train", "DemoBHSD", "2d", "0", "--device", "cuda", "--epochs", "2", *FAST], env)
    assert first.returncode == 0, first.stderr[-3000:]
    fold = results / "SSS__2d" / "fold_0"
    assert load_checkpoint(fold / "checkpoint_final.pth")["iteration"] == 6
    assert json.loads((fold / "training_summary.json").read_text())["device"].startswith("cuda")
    assert "with bf16 autocast, 1 process(es)" in first.stderr

    more = run_command(["sss_train", "DemoBHSD", "2d", "0", "--device", "cuda", "--epochs", "3", "--c", *FAST], env)
    assert more.returncode == 0, more.stderr[-3000:]
    state = load_checkpoint(fold / "checkpoint_final.pth")
    assert state["iteration"] == 9 and len(state["history"]["loss"]) == 3
    assert np.isfinite(state["history"]["loss"]).all()

    out = tmp_path / "predictions"
    predicted = run_command(["sss_predict", "-i", str(dataset_dir / "imagesTs"), "-o", str(out), "--device", "cuda"], env)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    inputs = sorted((dataset_dir / "imagesTs").glob("*_0000.nii.gz"))
    for image in inputs:
        written = out / image.name.replace("_0000.nii.gz", ".nii.gz")
        assert read_header(written).shape == read_header(image).shape


def test_torchrun_joins_an_nccl_process_group_and_trains_on_cuda(prepared):
    env, results = prepared
    env = dict(env, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               installed_script("sss_train"), "DemoBHSD", "2d", "3", "--device", "cuda", "--epochs", "2", *FAST, "--disable-val-tta"]
    result = run_command(command, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "joined the nccl process group: rank 0 of 1 on cuda:0" in result.stderr
    assert load_checkpoint(results / "SSS__2d" / "fold_3" / "checkpoint_final.pth")["iteration"] == 6
