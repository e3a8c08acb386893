"""Postprocessing chosen by cross-validation: per-class connected-component rules."""
