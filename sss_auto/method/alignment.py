"""Distribution alignment: the teacher's class marginals pulled to the labeled prior before pseudo labels are taken.

A class the teacher has not learned yet (a small lesion, a late class) gets almost no probability
mass on the unlabeled slices, so its pseudo labels are background and the unlabeled loss teaches
the student to miss it. ReMixMatch's distribution alignment (Berthelot et al., ICLR 2020) rescales
every pixel's teacher probabilities by π_c / p̄_c and renormalises, where π is the labeled class
prior (the fingerprint's voxel fractions) and p̄ a running mean of the teacher's probabilities on
the weak views: pixels that the teacher ranks highest for an under-predicted class become its
pseudo labels, in about the share the labeled data has. The factors are bounded by MAX_FACTOR
both ways so a class with no mass at all cannot turn noise into labels.
"""

from __future__ import annotations

import torch

from sss_auto.method.running_mean import fold_into

MOMENTUM = 0.99  # per SSL iteration: p̄ follows the last ~100 batches
MAX_FACTOR = 1000.0


class PriorAlignment:
    """π / p̄ per class, from the labeled prior and a running mean of the teacher's weak-view probabilities."""

    def __init__(self, prior: torch.Tensor) -> None:
        """prior: float (K+1,) class shares of the labeled voxels (background = 1 − the rest)."""
        self.prior = prior.double() / prior.double().sum()
        self.mean_probabilities = torch.full_like(self.prior, float("nan"))

    @classmethod
    def from_voxel_fractions(cls, fractions: dict[int, float], num_classes: int) -> PriorAlignment:
        """From the fingerprint's foreground voxel fractions (class value -> share); classes without one get 0."""
        prior = torch.zeros(num_classes, dtype=torch.float64)
        for k, share in fractions.items():
            if 0 < k < num_classes:
                prior[k] = share
        prior[0] = max(1.0 - float(prior[1:].sum()), 0.0)
        return cls(prior)

    def factors(self) -> torch.Tensor | None:
        """float (K+1,) multipliers of the teacher's probabilities, or None before the first batch."""
        if bool(torch.isnan(self.mean_probabilities).any()):
            return None
        ratio = self.prior / self.mean_probabilities.clamp_min(1e-12)
        return ratio.clamp(1 / MAX_FACTOR, MAX_FACTOR)

    @torch.no_grad()
    def update(self, batch_mean: torch.Tensor) -> None:
        """Fold one batch's mean teacher probabilities (K+1,) into p̄."""
        batch_mean = batch_mean.detach().double().cpu()
        fold_into(self.mean_probabilities, batch_mean, torch.ones_like(batch_mean, dtype=torch.bool), MOMENTUM)

    def metrics(self) -> dict[str, float]:
        """{"align_k": factor} of the foreground classes, for the log."""
        factors = self.factors()
        return {} if factors is None else {f"align_{k}": float(v) for k, v in enumerate(factors) if k > 0}

    def state_dict(self) -> dict:
        return {"prior": self.prior.clone(), "mean_probabilities": self.mean_probabilities.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.mean_probabilities = state["mean_probabilities"].clone().double()


def align(probabilities: torch.Tensor, factors: torch.Tensor | None) -> torch.Tensor:
    """Rescale (B, K+1, H, W) probabilities per class by `factors` (K+1,) and renormalise (None: unchanged)."""
    if factors is None:
        return probabilities
    scaled = probabilities * factors.to(probabilities.device, probabilities.dtype).view(1, -1, 1, 1)
    return scaled / scaled.sum(1, keepdim=True).clamp_min(1e-12)
