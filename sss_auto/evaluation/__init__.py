"""Segmentation metrics and evaluation of prediction folders."""
