"""Data-parallel training under torchrun: NCCL on GPUs, gloo on CPUs.

Every rank runs the same step on its own batches; gradients are averaged with all_reduce before
the optimizer step (one flat buffer), so the student stays identical on every rank. Only rank 0
logs, draws progress bars, validates and writes files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """rank, world size and the device this process uses."""

    rank: int
    world_size: int
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """Join the process group when torchrun started this process (also with one process); otherwise run alone."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(0, 1, device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    logger.info("joined the %s process group: rank %d of %d on %s", dist.get_backend(), dist.get_rank(),
                dist.get_world_size(), device)
    return DistInfo(dist.get_rank(), dist.get_world_size(), device)


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if dist.is_initialized():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, 0)


def average_gradients(parameters: list[nn.Parameter]) -> None:
    """Mean of every trainable parameter's gradient over ranks (missing gradients count as zero)."""
    if not dist.is_initialized():
        return
    params = [p for p in parameters if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def check_in_sync(module: nn.Module) -> None:
    """Raise when ranks hold different parameters (they must stay identical under gradient averaging)."""
    if not dist.is_initialized():
        return
    local = torch.stack([p.detach().double().sum() for p in module.parameters()]).sum().reshape(1)
    gathered = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    if not all(torch.allclose(g, gathered[0], rtol=1e-6) for g in gathered):
        raise RuntimeError(f"ranks diverged: parameter sums {[float(g) for g in gathered]}")


def gather_from_ranks(local: object) -> list[object]:
    """Every rank's `local` (picklable, from our own processes only), in rank order; [local] when not distributed."""
    if not dist.is_initialized():
        return [local]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    return gathered


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
