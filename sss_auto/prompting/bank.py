"""The PCSW bank: per unlabeled volume, the objects PCSW kept, stored compactly as a cropped label map.

A 2d iteration sees slices, PCSW needs volumes: the loop refreshes the bank on a schedule from the
teacher's whole-volume coarse masks, and loader workers cut the sampled slice out of it. Objects
are small next to the volume, so each case keeps only the bounding box of its objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class StoredObjects:
    """uint8 label crop (d, h, w) placed at `offset` (z, y, x) in a volume of `shape`."""

    offset: tuple[int, int, int]
    labels: np.ndarray
    shape: tuple[int, int, int]

    @classmethod
    def from_volume(cls, label_volume: np.ndarray) -> StoredObjects:
        nonzero = np.argwhere(label_volume)
        if nonzero.size == 0:
            return cls((0, 0, 0), np.zeros((0, 0, 0), np.uint8), tuple(label_volume.shape))
        lo, hi = nonzero.min(0), nonzero.max(0) + 1
        crop = label_volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.uint8)
        return cls(tuple(int(v) for v in lo), crop, tuple(label_volume.shape))

    def slice_labels(self, z: int) -> np.ndarray:
        """uint8 (H, W) label map of slice z (zeros where nothing was kept)."""
        out = np.zeros(self.shape[1:], np.uint8)
        dz = z - self.offset[0]
        if 0 <= dz < self.labels.shape[0]:
            y0, x0 = self.offset[1:]
            out[y0:y0 + self.labels.shape[1], x0:x0 + self.labels.shape[2]] = self.labels[dz]
        return out


@dataclass
class PromptBank:
    """Objects per unlabeled case, and when and how they were made.

    Attributes:
        objects: case id -> stored objects.
        epoch: the epoch of the last refresh (-1: never built).
        acceptance: share of (case, class) pairs where PCSW accepted a continuous window (last refresh).
        fallback: share that used the largest-slice fallback (last refresh).
        built: case id -> the epoch its objects were made (a rolling refresh renews the oldest first).
    """

    objects: dict[str, StoredObjects] = field(default_factory=dict)
    epoch: int = -1
    acceptance: float = 0.0
    fallback: float = 0.0
    built: dict[str, int] = field(default_factory=dict)

    def due(self, case_ids: list[str], fraction: float) -> list[str]:
        """The cases a refresh renews, in `case_ids` order: those without objects, then the oldest, up to
        ceil(fraction × len(case_ids)) in all (every case without objects is renewed whatever the fraction)."""
        missing = [c for c in case_ids if c not in self.objects]
        budget = max(0, math.ceil(fraction * len(case_ids) - 1e-9) - len(missing))
        have = sorted((self.built.get(c, self.epoch), index, c) for index, c in enumerate(case_ids) if c in self.objects)
        chosen = set(missing) | {c for _, _, c in have[:budget]}
        return [c for c in case_ids if c in chosen]

    def slice_labels(self, case_id: str, z: int, shape: tuple[int, int]) -> np.ndarray:
        """The kept objects on slice z of a case (zeros when the bank has nothing for it)."""
        stored = self.objects.get(case_id)
        return stored.slice_labels(z) if stored is not None else np.zeros(shape, np.uint8)

    def state_dict(self) -> dict:
        """Tensors and plain values only, so checkpoints load with weights_only=True."""
        return {"epoch": self.epoch, "acceptance": self.acceptance, "fallback": self.fallback, "built": dict(self.built),
                "objects": {k: {"offset": list(v.offset), "shape": list(v.shape), "labels": torch.from_numpy(v.labels.copy())}
                            for k, v in self.objects.items()}}

    @classmethod
    def from_state_dict(cls, state: dict) -> PromptBank:
        objects = {k: StoredObjects(tuple(v["offset"]), v["labels"].numpy().astype(np.uint8), tuple(v["shape"]))
                   for k, v in state["objects"].items()}
        built = {k: int(v) for k, v in state.get("built", {k: state["epoch"] for k in objects}).items()}
        return cls(objects, int(state["epoch"]), float(state["acceptance"]), float(state["fallback"]), built)
