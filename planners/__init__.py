"""Planning: dataset fingerprint, experiment plans and the GPU memory estimate."""
