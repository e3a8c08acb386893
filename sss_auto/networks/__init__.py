"""Networks: SAM-2 parts, encoders, coarse head, SAM-2 refinement, DFE, and the SSS model."""
