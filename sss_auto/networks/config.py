"""What network to build (kept free of torch, so planning can read and write it without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """What to build.

    Attributes:
        in_channels: image channels.
        num_classes: classes including background (K+1).
        image_size: square input side in pixels (multiple of 32).
        sam2_variant: "test" | "tiny" | "small" | "base_plus" | "large".
        encoder: "hiera" (SAM-2) or "conv" (plain CNN, for ablations).
        refine: use SAM-2 prompt refinement in the fused output.
        dfe_levels: feature levels enhanced by DFE (1 = stride 8, 2 = stride 16); () disables DFE.
        memory_frames: slice memories each slice of a clip attends to (SAM-2's memory attention,
            networks/memory.py; the volumetric configuration); 0: none, the 2d network.
        memory_policy: how a clip's memory bank keeps its entries ("self_sorting" | "fifo", networks/memory.py).
        memory_gate: the memory attention's output enters as a gated residual F + γ(MA(F) − F) with a learnable γ,
            0 at a random start (training starts as the 2d network) and 1 with SAM-2 weights; False: MA(F), as SAM-2.
    """

    in_channels: int
    num_classes: int
    image_size: int
    sam2_variant: str = "tiny"
    encoder: str = "hiera"
    refine: bool = True
    dfe_levels: tuple[int, ...] = (1, 2)
    memory_frames: int = 0
    memory_policy: str = "self_sorting"
    memory_gate: bool = True
