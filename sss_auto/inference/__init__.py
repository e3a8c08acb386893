"""Inference: sliding window with Gaussian weights and mirror TTA, and the two-pass SSS prediction."""
