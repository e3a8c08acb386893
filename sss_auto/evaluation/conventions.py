"""Evaluation conventions: how published numbers treat empty masks and in which unit they report distances.

Each convention is data, read by `evaluate.evaluate_case` and `evaluate.evaluate_folders`
(documentation/evaluation.md shows each one computed on an example and which papers use it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sss_auto.errors import SSSError


@dataclass(frozen=True)
class Convention:
    """One way of turning masks into the numbers a paper or challenge reports.

    `empty_both_dice`: the Dice (and IoU) of a class absent from both masks (NaN: left out of
    every mean; 0.0: counted as a miss). `voxel_distances`: also report HD95 and ASD in voxels
    (spacing 1 along every axis), as the semi-supervised literature does.
    """

    name: str
    empty_both_dice: float
    voxel_distances: bool
    description: str

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric keys of every case and class, in table order."""
        return ("dice", "iou", "hd95_mm", "asd_mm") + (("hd95_vox", "asd_vox") if self.voxel_distances else ())


NNUNET = Convention(
    name="nnunet", empty_both_dice=math.nan, voxel_distances=False,
    description="nnU-Net v2: per class and case; a class absent from both masks is NaN and left out of the means; "
                "present in one only: Dice 0, distances NaN (counted in n_undefined_distance); means over cases, "
                "then over classes")
SSL4MIS = Convention(
    name="ssl4mis", empty_both_dice=0.0, voxel_distances=True,
    description="SSL4MIS (HiLab-git/SSL4MIS, code/test_2D_fully.py): 3D Dice per class per volume with medpy's "
                "dc, which scores a class absent from both masks 0 and counts it; HD95 and ASD in voxels (no "
                "spacing, as the ACDC tables report them) and in mm; a distance with an empty mask is NaN and "
                "left out (the reference script stops there); means over volumes, then over classes")
CONVENTIONS = {c.name: c for c in (NNUNET, SSL4MIS)}


def convention(name: str) -> Convention:
    """The convention called `name`.

    Raises:
        SSSError: no convention has that name.
    """
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise SSSError(f"unknown evaluation convention {name!r}; known: {', '.join(CONVENTIONS)}") from None
