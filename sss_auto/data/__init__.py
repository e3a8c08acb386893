"""Training data: the case cache, patch sampling, augmentation and the background batch loader."""
