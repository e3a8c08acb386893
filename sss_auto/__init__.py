"""sss-auto: a self-configuring pipeline for semi-supervised segmentation with SAM-2 (SSS)."""

__version__ = "0.1.0"
