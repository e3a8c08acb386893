"""What one run is: the plan's settings, command-line overrides and ablation switches, and the network and
inference that follow from them (read by training, prediction and the demo alike)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from planners.plans import ConfigurationPlan, Plans, TrainingPlan
from sss_auto.inference.settings import InferenceSettings
from sss_auto.io.serialization import from_dict, to_dict
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
        memory_policy: the clip memory bank's rule override ("self_sorting" | "fifo"; None: the plan's;
            `2d_memory` only).
        memory_gate: the memory attention as a gated residual (the plan's `memory_gate`; off: SAM-2's
            plain replacement of the features; `2d_memory` only).
    """

    supervised_only: bool = False
    use_dfe: bool = True
    use_pcsw: bool = True
    refine: bool = True
    pcsw_tau: float | None = None
    strong_views: int = 2
    dfe_inputs: str | None = None
    memory_policy: str | None = None
    memory_gate: bool = True

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
        if self.memory_policy is not None:
            parts.append("memory" + "".join(word.capitalize() for word in self.memory_policy.split("_")))
        parts += ["noMemoryGate"] if not self.memory_gate else []
        return "-".join(parts)


def default_loader_workers() -> int:
    """Loader worker processes when none are asked for: one CPU is left to the training process, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a run is, resolved once (sss_auto/training/options.resolve) and read by training,
    validation, prediction and the demo alike; saved as training_config.json beside the checkpoints.

    Attributes:
        dataset: dataset folder name; configuration: e.g. "2d"; fold: "0".."4" or "all".
        plans: the dataset's plans, with the command-line overrides applied to `configuration`'s plan
            (labels, channels and the resampling that prediction undoes come from here too).
        ablation: the switches.
        seed: seeds model initialisation, data and strong views.
        device: "cpu" or "cuda".
        sam2_checkpoint: official SAM-2 weights, or None (random initialisation; said in the log).
        finetune_encoder: train a pretrained encoder at lr × encoder_lr_factor (else frozen).
        num_workers: loader worker processes (default: `default_loader_workers`).
        validation_tta: mirror TTA in the final validation.
        save_validation_probabilities: the final validation also writes `<case>_probabilities.npz`
            (what sss_find_best_configuration ensembles).
    """

    dataset: str
    configuration: str
    fold: str
    plans: Plans
    ablation: Ablation = field(default_factory=Ablation)
    seed: int = 0
    device: str = "cpu"
    sam2_checkpoint: Path | None = None
    finetune_encoder: bool = False
    num_workers: int = field(default_factory=default_loader_workers)
    validation_tta: bool = True
    save_validation_probabilities: bool = False

    @property
    def plan(self) -> ConfigurationPlan:
        """The trained configuration's plan (patch, batch, variant, training schedule)."""
        return self.plans.configuration(self.configuration)

    @property
    def training(self) -> TrainingPlan:
        return self.plan.training

    @property
    def dfe_inputs(self) -> str:
        return self.ablation.dfe_inputs if self.ablation.dfe_inputs is not None else self.plan.dfe_inputs

    @property
    def pcsw_tau(self) -> float:
        return self.ablation.pcsw_tau if self.ablation.pcsw_tau is not None else self.training.pcsw_tau

    @property
    def clip_length(self) -> int:
        """Slices per training sample: 0 for single slices (`2d`), else clips through the slice memory."""
        return self.plan.clip_length

    @property
    def class_names(self) -> dict[int, str]:
        """Label value -> name, background included (dataset.json's labels)."""
        return {v: k for k, v in self.plans.labels.items()}

    @property
    def model(self) -> ModelConfig:
        """The network the run trains and predicts with: the plan's shape and variant, the ablations applied."""
        plan, ablation = self.plan, self.ablation
        use_dfe = ablation.use_dfe and not ablation.supervised_only
        return ModelConfig(in_channels=len(self.plans.channel_names), num_classes=max(self.plans.labels.values()) + 1,
                           image_size=plan.patch_size[0], sam2_variant=plan.sam2_variant, encoder=plan.encoder,
                           refine=plan.refine and ablation.refine, dfe_levels=tuple(plan.dfe_levels) if use_dfe else (),
                           memory_frames=plan.memory_frames, memory_policy=ablation.memory_policy or plan.memory_policy,
                           memory_gate=plan.memory_gate and ablation.memory_gate)

    @property
    def inference(self) -> InferenceSettings:
        """Inference as the final validation runs it; sss_predict and the demo replace tta, device and batch size."""
        return InferenceSettings(patch=self.plan.patch_size[0], tta=self.validation_tta,
                                 batch_size=max(self.plan.batch_size_labeled, 1), device=self.device,
                                 pcsw_tau=self.pcsw_tau, use_prompts=self.ablation.use_pcsw)


def ablation_fields() -> tuple[str, ...]:
    """The Ablation switches by name (sss_train's ablation flags have these as their dest)."""
    return tuple(f.name for f in fields(Ablation))


def train_config_from_json(data: dict, run_plans: Plans, where: str = "training_config") -> TrainConfig:
    """A saved TrainConfig; one written before it held the whole plans (key "plan": the configuration's
    plan only) is completed with the run folder's plans.json, its own plan in place, as it was trained.

    Raises:
        SchemaError: naming the key that is unknown, missing or of the wrong type.
    """
    if isinstance(data, dict) and "plan" in data and "plans" not in data:
        data = dict(data)
        plans = to_dict(run_plans)
        plans["configurations"][data.get("configuration", "2d")] = data.pop("plan")
        data["plans"] = plans
    return from_dict(TrainConfig, data, where)
