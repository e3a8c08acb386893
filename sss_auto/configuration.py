"""What one run is: the plan's settings, command-line overrides and ablation switches, and the network and
inference that follow from them (read by training, prediction and the demo alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from planners.plans import ConfigurationPlan, TrainingPlan
from sss_auto.inference.two_pass import InferenceSettings
from sss_auto.networks.config import ModelConfig


@dataclass(frozen=True, kw_only=True)
class Ablation:
    """Switches for the ablations of SSS_METHOD.md; the defaults are full SSS.

    Attributes:
        supervised_only: labeled data only (no unlabeled stream, no teacher).
        use_dfe: DFE on the strong branch (off: strong features pass through).
        use_pcsw: prompts for unlabeled data and at inference from PCSW (off: no prompts, coarse only).
        refine: SAM-2 prompt encoder + mask decoder refinement (off: not built).
        pcsw_tau: continuity threshold override (None: the plan's).
        strong_views: strong views per unlabeled image (SSS_METHOD: 2; 1 halves the unlabeled cost).
        dfe_inputs: DFE input mode override ("strong_pair" | "weak_strong"; None: the plan's).
    """

    supervised_only: bool = False
    use_dfe: bool = True
    use_pcsw: bool = True
    refine: bool = True
    pcsw_tau: float | None = None
    strong_views: int = 2
    dfe_inputs: str | None = None

    def run_name(self) -> str:
        """Folder name of the run: "SSS", with a suffix per switch that differs from full SSS."""
        parts = ["SSS"]
        parts += ["supervised"] if self.supervised_only else []
        parts += ["noDFE"] if not self.use_dfe and not self.supervised_only else []
        parts += ["noPCSW"] if not self.use_pcsw else []
        parts += ["noRefine"] if not self.refine else []
        parts += [f"tau{self.pcsw_tau:g}"] if self.pcsw_tau is not None else []
        parts += [f"views{self.strong_views}"] if self.strong_views != 2 and not self.supervised_only else []
        if self.dfe_inputs is not None and self.use_dfe and not self.supervised_only:
            parts.append("dfe" + "".join(word.capitalize() for word in self.dfe_inputs.split("_")))
        return "-".join(parts)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything `fit` needs, saved as training_config.json beside the checkpoints.

    Attributes:
        dataset: dataset folder name; configuration: e.g. "2d"; fold: "0".."4" or "all".
        plan: the configuration's plan (patch, batch, variant, ...), training overrides applied.
        ablation: the switches.
        seed: seeds model initialisation, data and strong views.
        device: "cpu" or "cuda".
        sam2_checkpoint: official SAM-2 weights, or None (random initialisation; said in the log).
        finetune_encoder: train a pretrained encoder at lr × encoder_lr_factor (else frozen).
        num_workers: loader worker processes.
        validation_tta: mirror TTA in the final validation.
        save_validation_probabilities: the final validation also writes `<case>_probabilities.npz`
            (what sss_find_best_configuration ensembles).
    """

    dataset: str
    configuration: str
    fold: str
    plan: ConfigurationPlan
    ablation: Ablation = field(default_factory=Ablation)
    seed: int = 0
    device: str = "cpu"
    sam2_checkpoint: Path | None = None
    finetune_encoder: bool = False
    num_workers: int = 1
    validation_tta: bool = True
    save_validation_probabilities: bool = False

    @property
    def training(self) -> TrainingPlan:
        return self.plan.training

    @property
    def dfe_inputs(self) -> str:
        return self.ablation.dfe_inputs if self.ablation.dfe_inputs is not None else self.plan.dfe_inputs

    @property
    def pcsw_tau(self) -> float:
        return self.ablation.pcsw_tau if self.ablation.pcsw_tau is not None else self.training.pcsw_tau


def model_config(config: TrainConfig, in_channels: int, num_classes: int) -> ModelConfig:
    """The network a run trains, from the plan and the ablation switches."""
    plan, ablation = config.plan, config.ablation
    use_dfe = ablation.use_dfe and not ablation.supervised_only
    return ModelConfig(in_channels=in_channels, num_classes=num_classes, image_size=plan.patch_size[0],
                       sam2_variant=plan.sam2_variant, encoder=plan.encoder, refine=plan.refine and ablation.refine,
                       dfe_levels=tuple(plan.dfe_levels) if use_dfe else ())


def inference_settings(config: TrainConfig, tta: bool | None = None, device: str | None = None,
                       batch_size: int | None = None) -> InferenceSettings:
    """Inference as the predictor does it, with the run's patch, τ and ablations (defaults: the run's own)."""
    return InferenceSettings(patch=config.plan.patch_size[0], tta=config.validation_tta if tta is None else tta,
                             batch_size=batch_size or max(config.plan.batch_size_labeled, 1),
                             device=device or config.device, pcsw_tau=config.pcsw_tau,
                             use_prompts=config.ablation.use_pcsw)
