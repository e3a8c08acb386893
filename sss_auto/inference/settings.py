"""How inference runs (kept free of torch, so a run's configuration can be read without it)."""

from __future__ import annotations

from dataclasses import dataclass

from planners.plans import TrainingPlan


@dataclass(frozen=True)
class InferenceSettings:
    """How to predict: tile side, TTA, tiles per forward, device, PCSW τ and whether to run pass 2."""

    patch: int
    tta: bool = True
    batch_size: int = 8
    device: str = "cpu"
    pcsw_tau: float = TrainingPlan.pcsw_tau
    use_prompts: bool = True
