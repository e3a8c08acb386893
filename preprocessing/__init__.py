"""Preprocessing: crop to nonzero, normalize, resample, cache. Shared by training and prediction."""
