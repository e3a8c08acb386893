"""GPU memory needed by one SSS training step, measured on the real model on the meta device.

One step = the trainer's own `sss_losses` (labeled student pass, teacher pass on the weak view
without gradients, two strong student passes with DFE, SAM-2 refinement for every class, the
losses), backward, AdamW. The model is built and run on the meta device (shapes only, no memory,
about a second), and we count:

- persistent: trainable parameters × 4 (weights, gradients, two AdamW moments) + all parameters
  once more for the EMA teacher;
- activations: every tensor autograd saves for backward (deduplicated by storage, parameters
  excluded), counted through `torch.autograd.graph.saved_tensors_hooks`;
- workspace: the two largest tensors any single operation produces (transients, backward grads).

Activations grow linearly with the batch: `planners/batch_fit.py` fits the batch from batches 1 and 2
and remembers the estimates, so planning only comes here for a configuration it has not measured.
Tensors are counted in float32 (the meta device has no autocast). For a step under the trainer's
bf16 autocast on CUDA (`StepShape.mixed_precision`), activations and workspace are scaled by
MIXED_PRECISION_FACTOR, measured on an H200 (documentation/benchmarks.md, "GPU").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from planners.batch_fit import MemoryEstimate
from sss_auto.data.batch import ClipBatch, TrainBatch
from sss_auto.data.strong import StrongView
from sss_auto.method.clip_steps import clip_losses
from sss_auto.method.steps import sss_losses
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet
from sss_auto.networks.prompts import Prompts

# bf16 autocast / float32 for activations + workspace. Measured with max_memory_allocated on an H200,
# 6 classes: 0.51 (tiny, 256², batch 2); at 512²: 0.55 (small, 3), 0.49 (base_plus, 3), 0.44-0.49
# (large, 3/7/12). On the CPU, autocast's saved tensors gave 0.60-0.62. 0.65 keeps a margin.
MIXED_PRECISION_FACTOR = 0.65


@dataclass(frozen=True)
class StepShape:
    """The shape of one training step to estimate."""

    model: ModelConfig
    batch_labeled: int
    batch_unlabeled: int
    encoder_trainable: bool = True
    mixed_precision: bool = False  # the step runs under bf16 autocast (training on CUDA)
    clip_length: int = 0  # > 0: batches of clips of this many slices (2d_memory's `clip_losses`)


class _LargestOutputs(TorchDispatchMode):
    """Remember the two largest output tensors of any single operation."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = [0, 0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(tensor, torch.Tensor):
                self.largest = sorted(self.largest + [tensor.numel() * tensor.element_size()])[-2:]
        return out


def estimate_step_memory(shape: StepShape, model: SSSNet | None = None) -> MemoryEstimate:
    """Estimate the memory of one SSS training step (see the module docstring).

    Args:
        shape: model configuration and batch sizes.
        model: a model already built on the meta device for `shape.model` (built when None).
    """
    model = model or SSSNet(shape.model, device="meta")
    trainable = [p for name, p in model.named_parameters() if shape.encoder_trainable or not name.startswith("encoder.")]
    n_all = sum(p.numel() * p.element_size() for p in model.parameters())
    n_trainable = sum(p.numel() * p.element_size() for p in trainable)
    persistent = 4 * n_trainable + n_all + sum(b.numel() * b.element_size() for b in model.buffers())
    for p in model.parameters():
        p.requires_grad_(any(p is t for t in trainable))
    param_storages = {_storage_key(p) for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in param_storages:
            saved[key] = max(saved.get(key, 0), tensor.untyped_storage().nbytes())
        return tensor

    tracker = _LargestOutputs()
    with tracker, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        one_step_forward(model, shape)
    scale = MIXED_PRECISION_FACTOR if shape.mixed_precision else 1.0
    return MemoryEstimate(persistent, int(sum(saved.values()) * scale), int(sum(tracker.largest) * scale))


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


def one_step_forward(model: SSSNet, shape: StepShape, device: str = "meta") -> torch.Tensor:
    """The trainer's SSS step (`sss_losses`, or `clip_losses` for clips) on a synthetic batch with every class
    prompted; returns L.

    `model` serves as student and teacher: the teacher pass runs without gradients, so its weights
    do not matter for memory. Two strong views with CutMix, as the trainer's default. Also used on
    the CPU to measure real memory (tests, benchmarks).
    """
    cfg = shape.model
    size = (cfg.image_size, cfg.image_size)
    n_l, n_u, n_fg = shape.batch_labeled, shape.batch_unlabeled, cfg.num_classes - 1
    if shape.clip_length:
        return clip_losses(_clip_batch(shape, device), model, model).loss
    batch = TrainBatch(torch.randn(n_l, cfg.in_channels, *size, device=device),
                       torch.zeros(n_l, *size, dtype=torch.int64, device=device), _all_prompted(n_l, n_fg, device),
                       torch.randn(n_u, cfg.in_channels, *size, device=device), _all_prompted(n_u, n_fg, device))
    partner = torch.arange(n_u, device=device).roll(1)
    views = [StrongView(torch.randn(n_u, cfg.in_channels, *size, device=device),
                        torch.zeros(n_u, *size, dtype=torch.bool, device=device), partner) for _ in range(2)]
    return sss_losses(batch, model, model, views).loss


def _clip_batch(shape: StepShape, device: str) -> ClipBatch:
    """Labeled and unlabeled clips (weak and strong) of random slices, every class prompted on the first slice."""
    cfg, length = shape.model, shape.clip_length
    n_l, n_u, n_fg = shape.batch_labeled, shape.batch_unlabeled, cfg.num_classes - 1

    def clips(n: int) -> torch.Tensor:
        return torch.randn(n, length, cfg.in_channels, cfg.image_size, cfg.image_size, device=device)

    def index(n: int) -> torch.Tensor:  # on the CPU: the memory bank reads slice distances as numbers
        return torch.arange(length).expand(n, length)

    return ClipBatch(clips(n_l), torch.zeros(n_l, length, cfg.image_size, cfg.image_size, dtype=torch.int64, device=device),
                     _all_prompted(n_l, n_fg, device), index(n_l), clips(n_u), clips(n_u), _all_prompted(n_u, n_fg, device),
                     index(n_u))


def _all_prompted(batch: int, num_foreground: int, device: str) -> Prompts:
    # `valid` stays on the CPU: selecting prompted pairs is data-dependent, which meta tensors cannot do.
    boxes = torch.tensor([4.0, 4.0, 24.0, 24.0], device=device).expand(batch, num_foreground, 4).contiguous()
    points = torch.full((batch, num_foreground, 2), 12.0, device=device)
    return Prompts(boxes, points, torch.ones(batch, num_foreground, dtype=torch.bool))


def measure_step_estimates(config: ModelConfig, batches: tuple[int, ...], encoder_trainable: bool = True,
                           mixed_precision: bool = False, clip_length: int = 0) -> list[MemoryEstimate]:
    """`estimate_step_memory` for each batch size (labeled = unlabeled), with one model built for all."""
    model = SSSNet(config, device="meta")
    return [estimate_step_memory(StepShape(config, b, b, encoder_trainable, mixed_precision, clip_length), model)
            for b in batches]
