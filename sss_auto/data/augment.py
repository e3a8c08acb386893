"""Augmentation pipelines from batchgenerators: spatial (+ intensity) for labeled and weak views.

The spatial transform moves the `seg` channels with the image, so everything that must follow the
weak view's geometry — the label of a labeled slice, the PCSW objects of an unlabeled slice from
which its prompts are derived — rides along as `seg`. batchgenerators draws from numpy's global
generator (and Python's `random` for noise and blur strengths); each loader worker seeds both from
(seed, epoch, rank, worker), so runs are reproducible.
"""

from __future__ import annotations

import numpy as np
from batchgenerators.transforms.abstract_transforms import Compose
from batchgenerators.transforms.color_transforms import BrightnessMultiplicativeTransform, ContrastAugmentationTransform, GammaTransform
from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

SAMPLING_MARGIN = 1.25  # sample a larger window so rotations do not bring in empty corners


def sampling_size(patch: int) -> int:
    """Side of the window sampled before the spatial transform crops it to `patch`."""
    return int(np.ceil(patch * SAMPLING_MARGIN / 2) * 2)


def spatial_and_intensity(patch: int, intensity: bool = True, p_spatial: float = 0.2) -> Compose:
    """Rotation and scaling (each with probability `p_spatial`; nnU-Net 2d ranges), mirroring, then mild intensity changes."""
    transforms = [
        SpatialTransform((patch, patch), patch_center_dist_from_border=None, do_elastic_deform=False,
                         do_rotation=True, angle_x=(-np.pi, np.pi), do_scale=True, scale=(0.7, 1.4),
                         border_mode_data="constant", border_cval_data=0, order_data=3,
                         border_mode_seg="constant", border_cval_seg=0, order_seg=0, random_crop=False,
                         p_rot_per_sample=p_spatial, p_scale_per_sample=p_spatial),
        MirrorTransform(axes=(0, 1)),
    ]
    if intensity:
        transforms += [
            GaussianNoiseTransform(noise_variance=(0, 0.1), p_per_sample=0.1),
            GaussianBlurTransform(blur_sigma=(0.5, 1.0), p_per_sample=0.1),
            BrightnessMultiplicativeTransform(multiplier_range=(0.75, 1.25), p_per_sample=0.15),
            ContrastAugmentationTransform(p_per_sample=0.15),
            GammaTransform(gamma_range=(0.7, 1.5), invert_image=False, per_channel=True, retain_stats=True, p_per_sample=0.3),
        ]
    return Compose(transforms)


def apply(transform: Compose, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run a pipeline on a batch.

    Args:
        images: float32 (B, C, s, s); labels: integer (B, s, s).

    Returns:
        float32 (B, C, patch, patch) and int64 (B, patch, patch).
    """
    out = transform(data=images, seg=labels[:, None].astype(np.float32))
    return out["data"].astype(np.float32), np.rint(out["seg"][:, 0]).astype(np.int64)

