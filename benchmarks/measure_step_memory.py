"""Measure the peak memory of one real SSS training step and compare with the planner's estimate.

Usage:
    python benchmarks/measure_step_memory.py [--variant test] [--patch 256] [--batch 4] [--classes 4]
    python benchmarks/measure_step_memory.py --device cuda [--amp] --variant tiny --patch 512 --batch 4
    python benchmarks/measure_step_memory.py --device cuda --amp --plan-budget-gib 40 --patch 512 --classes 6
    python benchmarks/measure_step_memory.py --clip-length 4 --memory-frames 3 --patch 128 --batch 1   # 2d_memory

Prints one JSON line: estimated and measured bytes and the relative error (estimate − measured) / measured;
with `--amp` the estimate is the planner's mixed-precision one (the float32 one is printed beside it).
One step = forward, backward and AdamW on the student plus an EMA teacher copy.
- CPU: the growth of the process's peak resident memory from before the model is built to after the
  step, so it includes allocator overhead the estimate does not.
- CUDA: the CUDA caching allocator's peak of allocated bytes (`max_memory_allocated`) over the same
  span; `--amp` runs the step under the trainer's bf16 autocast. The reserved peak is reported too.
- `--plan-budget-gib B`: variant, patch and batch are the planner's choice for a B GiB budget (as
  `sss_plan_and_preprocess --gpu-memory-gb B` would plan them), and the output says whether the
  measured peak stayed within B.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import resource

import torch

GIB = 1024**3


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    """This process image's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux carries that over
    from the parent's memory at fork through exec, so a large parent (a test suite) hid the step's growth."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _one_training_step(model, shape, device: str, amp: bool) -> None:
    from planners.memory import one_step_forward
    from sss_auto.training.loop import mixed_precision

    teacher = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    with mixed_precision(device) if amp else contextlib.nullcontext():
        loss = one_step_forward(model, shape, device)
    loss.backward()
    optimizer.step()
    del teacher


def measure(variant: str, patch: int, batch: int, classes: int, device: str = "cpu", amp: bool = False,
            clip_length: int = 0, memory_frames: int = 0) -> dict:
    from planners.memory import StepShape, estimate_step_memory
    from sss_auto.networks.config import ModelConfig
    from sss_auto.networks.model import SSSNet

    torch.set_num_threads(1)
    memory = {"dfe_levels": (), "memory_frames": memory_frames} if clip_length else {}  # 2d_memory's network
    config = ModelConfig(1, classes, patch, variant, **memory)
    shape = StepShape(config, batch, batch, mixed_precision=amp, clip_length=clip_length)
    full_precision = estimate_step_memory(StepShape(config, batch, batch, clip_length=clip_length))
    estimate = estimate_step_memory(shape) if amp else full_precision
    # warm up kernels, library workspaces and the allocator on a throw-away model so one-off costs do not count
    warm = SSSNet(ModelConfig(1, classes, 64, variant, **memory), device=device)
    _one_training_step(warm, StepShape(warm.config, 1, 1, clip_length=clip_length), device, amp)
    del warm
    result = {"variant": variant, "patch": patch, "batch": batch, "classes": classes, "device": device, "amp": amp,
              "clip_length": clip_length, "memory_frames": memory_frames,
              "estimated_bytes": estimate.total_bytes,
              "estimated_full_precision_bytes": full_precision.total_bytes}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        _one_training_step(SSSNet(config, device=device), shape, device, amp)
        torch.cuda.synchronize()
        measured = torch.cuda.max_memory_allocated() - baseline
        result.update(reserved_peak_bytes=torch.cuda.max_memory_reserved(), gpu=torch.cuda.get_device_name(0))
    else:
        baseline = _rss_bytes()
        peak_before = _peak_rss_bytes()
        _one_training_step(SSSNet(config), shape, device, amp)
        peak = _peak_rss_bytes()
        measured = peak - max(baseline, peak_before) if peak > peak_before else 0
    result.update(measured_bytes=measured,
                  relative_error=(estimate.total_bytes - measured) / measured if measured else None)
    return result


def measure_plan(budget_gib: float, patch: int, classes: int, device: str, amp: bool) -> dict:
    """Plan (variant, patch, batch) for `budget_gib` as the planner does, then measure that step."""
    from planners.planner import choose_model

    variant, side, batch, estimate_gib = choose_model(1, classes, patch, budget_gib)
    result = measure(variant, side, batch, classes, device, amp)
    peak = result.get("reserved_peak_bytes", result["measured_bytes"])
    result.update(budget_gib=budget_gib, planned_estimate_gib=round(estimate_gib, 3),
                  measured_gib=round(result["measured_bytes"] / GIB, 3), fits_budget=peak <= budget_gib * GIB)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="test")
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast as the trainer uses on CUDA")
    parser.add_argument("--plan-budget-gib", type=float, default=None,
                        help="let the planner choose variant, patch and batch for this budget")
    parser.add_argument("--clip-length", type=int, default=0, help="2d_memory: batches of clips of this many slices")
    parser.add_argument("--memory-frames", type=int, default=3, help="2d_memory: memories each slice reads")
    args = parser.parse_args()
    if args.amp and args.device != "cuda":
        parser.error("--amp needs --device cuda (the trainer uses no autocast on the CPU)")
    if args.plan_budget_gib is not None:
        print(json.dumps(measure_plan(args.plan_budget_gib, args.patch, args.classes, args.device, args.amp)))
    else:
        print(json.dumps(measure(args.variant, args.patch, args.batch, args.classes, args.device, args.amp,
                                 args.clip_length, args.memory_frames)))
