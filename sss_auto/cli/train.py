"""sss_train DATASET CONFIG FOLD: train the SSS semi-supervised trainer on one fold."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from planners.plans import TRAINING_CHOICES, TrainingPlan, flag_of, overridable_fields
from sss_auto.cli.common import add_common_options, run_command
from sss_auto.configuration import Ablation, TrainConfig, ablation_fields, default_loader_workers
from sss_auto.networks.dfe_modes import DFE_INPUTS
from sss_auto.networks.memory_policies import POLICIES

FOLDS = ["0", "1", "2", "3", "4", "all"]


def add_training_plan_options(group) -> None:
    """One option per overridable TrainingPlan field: its flag, dest = the field's name, help from the field."""
    choices = dict(TRAINING_CHOICES)
    for f in overridable_fields():
        where = f"(default: the plan's training.{f.name})"
        if f.type == "bool":
            group.add_argument(flag_of(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{f.metadata['help']} {where}")
        else:
            kind = str if f.type == "str" else int if f.type == "int" else float
            group.add_argument(flag_of(f.name), dest=f.name, type=kind, choices=choices.get(f.name), default=None,
                               help=f"{f.metadata['help']} {where}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train SSS (SAM-2 + weak-to-strong + DFE + PCSW) on one fold.")
    p.add_argument("dataset", help="dataset name (BHSD), folder (Dataset501_BHSD) or id (501)")
    p.add_argument("configuration", help="planned configuration, e.g. 2d")
    p.add_argument("fold", choices=FOLDS, help="cross-validation fold 0-4, or 'all' (every labeled case, no validation)")
    g = p.add_argument_group("training (each defaults to plans.json's training field of the same name)")
    add_training_plan_options(g)
    g.add_argument("--batch-size", type=int, help="labeled and unlabeled slices per step (each)")
    g.add_argument("--unlabeled-batch-size", type=int, help="unlabeled slices per step (default: --batch-size or the plan's)")
    s = p.add_argument_group("SAM-2")
    s.add_argument("--sam2-checkpoint", type=Path, default=os.environ.get("SSS_SAM2_CHECKPOINT") or None,
                   help="official SAM-2 checkpoint of the planned variant (default: $SSS_SAM2_CHECKPOINT, else one "
                        "downloaded by sss_download_sam2; none: random initialisation, said in the log)")
    s.add_argument("--finetune-encoder", action="store_true", help="fine-tune a pretrained encoder at lr x encoder_lr_factor")
    a = p.add_argument_group("ablations (each dest is the Ablation field of the same name; defaults: full SSS)")
    a.add_argument("--supervised-only", dest="supervised_only", action="store_true", default=Ablation.supervised_only,
                   help="labeled data only")
    a.add_argument("--no-dfe", dest="use_dfe", action="store_false", default=Ablation.use_dfe, help="weak-to-strong without DFE")
    a.add_argument("--no-pcsw", dest="use_pcsw", action="store_false", default=Ablation.use_pcsw,
                   help="no prompts (coarse output only)")
    a.add_argument("--no-refine", dest="refine", action="store_false", default=Ablation.refine, help="no SAM-2 prompt refinement")
    a.add_argument("--pcsw-tau", dest="pcsw_tau", type=float, default=Ablation.pcsw_tau,
                   help=f"PCSW continuity threshold (default: the plan's training.pcsw_tau, planned {TrainingPlan.pcsw_tau})")
    a.add_argument("--dfe-inputs", dest="dfe_inputs", choices=DFE_INPUTS, default=Ablation.dfe_inputs,
                   help="which features DFE pairs (default: the plan's dfe_inputs; weak_strong is the ablation "
                        "that lets the weak view's features reach the student)")
    a.add_argument("--strong-views", dest="strong_views", type=int, choices=[1, 2], default=Ablation.strong_views,
                   help=f"strong views per unlabeled image (default {Ablation.strong_views}, as SSS_METHOD; 1 makes the "
                        "SSS step cheaper)")
    a.add_argument("--memory-policy", dest="memory_policy", choices=POLICIES, default=Ablation.memory_policy,
                   help="2d_memory: how a clip's memory bank keeps entries (default: the plan's memory_policy; fifo is "
                        "SAM-2's rule, self_sorting MedSAM-2's idea)")
    a.add_argument("--no-memory-gate", dest="memory_gate", action="store_false", default=Ablation.memory_gate,
                   help="2d_memory: the memory attention's output replaces the slice's features (SAM-2's) instead of "
                        "entering as a gated residual that starts at 0 from random weights")
    r = p.add_argument_group("run")
    r.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    r.add_argument("--c", action="store_true", help="continue from the last checkpoint")
    r.add_argument("--val-only", action="store_true", help="only run the final validation of a finished fold")
    r.add_argument("--seed", type=int, default=TrainConfig.seed,
                   help=f"seed of initialisation, data and strong views (default {TrainConfig.seed})")
    r.add_argument("--num-workers", type=int, default=None,
                   help=f"data loader workers (default: CPUs - 1, at most 8; here {default_loader_workers()})")
    r.add_argument("--verify-cache", action="store_true",
                   help="hash every cached array again (default: only arrays new or changed since the last check)")
    r.add_argument("--disable-val-tta", action="store_true", help="no mirror TTA in the final validation")
    r.add_argument("--save-probabilities", action="store_true",
                   help="the final validation also writes <case>_probabilities.npz, which sss_find_best_configuration "
                        "ensembles (nnU-Net's --npz; add it to --val-only for a finished fold)")
    add_common_options(p)
    return p


def _run(args: argparse.Namespace) -> int:
    import torch

    from sss_auto import paths
    from sss_auto.dataset.raw import find_dataset
    from sss_auto.errors import SSSError
    from sss_auto.training.distributed import init_distributed, shutdown
    from sss_auto.training.options import OVERRIDABLE, make_train_config
    from sss_auto.training.run import train_fold

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SSSError("--device cuda: no CUDA device is available")
    dataset = find_dataset(args.dataset, paths.raw_roots())
    overrides = {name: getattr(args, name) for name in OVERRIDABLE}  # each flag's dest is its plans field
    ablation = Ablation(**{name: getattr(args, name) for name in ablation_fields()})  # each flag's dest is its field
    workers = {} if args.num_workers is None else {"num_workers": args.num_workers}
    dist = init_distributed(device)
    config = make_train_config(dataset, args.configuration, args.fold, overrides=overrides, batch_size=args.batch_size,
                               unlabeled_batch_size=args.unlabeled_batch_size,
                               ablation=ablation, seed=args.seed, device=dist.device, sam2_checkpoint=args.sam2_checkpoint,
                               finetune_encoder=args.finetune_encoder, **workers,
                               validation_tta=not args.disable_val_tta,
                               save_validation_probabilities=args.save_probabilities)
    try:
        summary = train_fold(dataset, config, dist, args.c, args.val_only, not args.no_progress, args.verify_cache)
    finally:
        shutdown()
    if dist.is_main:
        validation = summary.get("final_validation", summary) or {}
        dice = (validation.get("mean") or {}).get("dice")
        print(f"done: mean validation Dice {dice if dice is None else round(dice, 4)}; "
              f"files in {paths.root('results') / dataset.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_run, _parser(), argv)
