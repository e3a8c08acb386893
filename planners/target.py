"""What a plan is made for: the device that will train it and the SAM-2 weights that exist.

The planner decides from what is there (issue 13): with an official SAM-2 checkpoint the
pretrained regime (the largest variant with weights that fits, frozen encoder, the paper's
learning rate); without one the from-scratch regime (the reduced `test` Hiera at the learning rate
that learned from random initialisation in the semi-supervised benchmark). Checkpoints are looked
for exactly where `sss_train` looks: `--sam2-checkpoint`, `$SSS_SAM2_CHECKPOINT`, then
`sss_download_sam2`'s cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sss_auto.errors import CheckpointError
from sss_auto.networks.checkpoints import (checkpoint_dir, find_downloaded_checkpoints, read_official_checkpoint,
                                           variant_of_checkpoint, variant_of_state)

@dataclass(frozen=True)
class PlanTarget:
    """The machine and weights a plan is for.

    Attributes:
        device: "cuda" or "cpu": the device that will train.
        memory_gib: memory budget of one training step (GPU memory on CUDA, host memory on the CPU).
        weights: SAM-2 variant -> official checkpoint found at planning time.
        memory_source: how memory_gib was chosen (for the log).
    """

    device: str
    memory_gib: float
    weights: dict[str, Path] = field(default_factory=dict)
    memory_source: str = "given"


def find_weights(explicit: Path | None = None, forced_variant: str | None = None) -> dict[str, Path]:
    """The SAM-2 checkpoints sss_train would use: `explicit`, else $SSS_SAM2_CHECKPOINT, else the download cache.

    Raises:
        CheckpointError: an explicit file that is missing, or whose variant is neither in its official
            name nor given as `forced_variant`.
    """
    given = explicit or (Path(os.environ["SSS_SAM2_CHECKPOINT"]) if os.environ.get("SSS_SAM2_CHECKPOINT") else None)
    if given is None:
        return find_downloaded_checkpoints()
    path = Path(given).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: SAM-2 checkpoint not found (given by --sam2-checkpoint or $SSS_SAM2_CHECKPOINT)")
    variant = forced_variant or variant_of_checkpoint(path) or variant_of_state(read_official_checkpoint(path, "unknown"))
    if variant is None:
        raise CheckpointError(f"{path}: neither a published file name (sam2.1_hiera_<variant>.pt, MedSAM2_latest.pt) nor "
                              "an image encoder whose Hiera blocks name a variant; say which variant it is with --sam2-variant")
    return {variant: path}


def searched_places() -> str:
    """Where find_weights looked, for messages."""
    return f"--sam2-checkpoint, $SSS_SAM2_CHECKPOINT, {checkpoint_dir()} (sss_download_sam2)"
