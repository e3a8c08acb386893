"""Evaluation conventions: how published numbers treat empty masks, in which unit they report distances, and
whether a challenge scores each case as a whole.

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
    (spacing 1 along every axis), as the semi-supervised literature does. `prediction_only_dice`:
    the Dice of a class predicted but absent from the reference (0.0: a miss; NaN: ignored).
    `healthy_fp_threshold`: when set, each case also gets one challenge score (`case_score`): the
    mean Dice over the classes its reference holds, and a case without any scored by its
    false-positive voxels x as 2(T - x)/(2T - x), 0 above T.
    """

    name: str
    empty_both_dice: float
    voxel_distances: bool
    description: str
    prediction_only_dice: float = 0.0
    healthy_fp_threshold: int | None = None

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
MBHSEG = Convention(
    name="mbhseg", empty_both_dice=math.nan, voxel_distances=False, prediction_only_dice=math.nan,
    healthy_fp_threshold=100,
    description="MBH-Seg challenge (mbhseg/metrics-mbhseg2025, metrics_set.compute_multiclass_dice, read not "
                "copied): per case, the mean Dice over the foreground classes present in the reference (a class "
                "predicted but absent from the reference is ignored); a case whose reference has no foreground "
                "scores 2(100 - x)/(200 - x) for x false-positive voxels, 0 when x > 100; the headline is the mean "
                "of the case scores (one reference per case: the challenge's per-rater Dice)")
CONVENTIONS = {c.name: c for c in (NNUNET, SSL4MIS, MBHSEG)}


def case_score(per_class: dict[str, dict[str, float]], fp_threshold: int) -> float:
    """The challenge score of one case from its per-class metrics (`reference_voxels`, `prediction_voxels`, `dice`).

    Mean Dice over the classes present in the reference; with none present, the false-positive voxels x
    (every predicted foreground voxel) give 2(T - x)/(2T - x), and 0 when x > T.
    """
    present = [m["dice"] for m in per_class.values() if m["reference_voxels"] > 0]
    if present:
        return float(sum(present) / len(present))
    false_positives = sum(m["prediction_voxels"] for m in per_class.values())
    if false_positives > fp_threshold:
        return 0.0
    return 2.0 * (fp_threshold - false_positives) / (2.0 * fp_threshold - false_positives)


def convention(name: str) -> Convention:
    """The convention called `name`.

    Raises:
        SSSError: no convention has that name.
    """
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise SSSError(f"unknown evaluation convention {name!r}; known: {', '.join(CONVENTIONS)}") from None
