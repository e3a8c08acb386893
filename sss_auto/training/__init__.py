"""The SSS trainer as composition: config, build, steps, loop, checkpoints, progress, DDP."""
