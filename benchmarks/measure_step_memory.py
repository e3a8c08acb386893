"""Measure the peak memory of one real SSS training step on the CPU and compare with the planner's estimate.

Usage: python benchmarks/measure_step_memory.py [--variant test] [--patch 256] [--batch 4] [--classes 4]
Prints one JSON line: estimated and measured bytes and the relative error. The measurement is the
growth of the process's peak resident memory from before the model is built to after one step
(forward, backward, AdamW, EMA teacher copy), so it includes allocator overhead the estimate does not.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource

import torch


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def measure(variant: str, patch: int, batch: int, classes: int) -> dict:
    from planners.memory import StepShape, estimate_step_memory, one_step_forward
    from sss_auto.networks.model import ModelConfig, SSSNet

    torch.set_num_threads(1)
    config = ModelConfig(1, classes, patch, variant)
    shape = StepShape(config, batch, batch)
    estimate = estimate_step_memory(shape)
    # warm up kernels and allocator on a throw-away model so one-off costs do not count
    warm = SSSNet(ModelConfig(1, classes, 64, variant))
    one_step_forward(warm, StepShape(warm.config, 1, 1), "cpu").backward()
    del warm
    baseline = _rss_bytes()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model = SSSNet(config)
    teacher = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    one_step_forward(model, shape, "cpu").backward()
    optimizer.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    measured = peak - max(baseline, peak_before) if peak > peak_before else 0
    del teacher
    return {"variant": variant, "patch": patch, "batch": batch, "classes": classes,
            "estimated_bytes": estimate.total_bytes, "measured_bytes": measured,
            "relative_error": (estimate.total_bytes - measured) / measured if measured else None}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="test")
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--classes", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(measure(args.variant, args.patch, args.batch, args.classes)))
