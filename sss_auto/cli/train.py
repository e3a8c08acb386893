"""sss_train DATASET CONFIG FOLD: train the SSS semi-supervised trainer on one fold."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sss_auto.cli.common import add_common_options, run_command

FOLDS = ["0", "1", "2", "3", "4", "all"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train SSS (SAM-2 + weak-to-strong + DFE + PCSW) on one fold.")
    p.add_argument("dataset", help="dataset name (BHSD), folder (Dataset501_BHSD) or id (501)")
    p.add_argument("configuration", help="planned configuration, e.g. 2d")
    p.add_argument("fold", choices=FOLDS, help="cross-validation fold 0-4, or 'all' (every labeled case, no validation)")
    g = p.add_argument_group("schedule (defaults from plans.json)")
    g.add_argument("--epochs", dest="num_epochs", type=int, help="number of epochs")
    g.add_argument("--iters-per-epoch", dest="iterations_per_epoch", type=int, help="iterations per epoch")
    g.add_argument("--warmup-epochs", type=int, help="supervised epochs before pseudo labels are used")
    g.add_argument("--warmup-fraction", type=float,
                   help="instead: the supervised warm-up's share of the time budget (or of the epochs without one)")
    g.add_argument("--lr", dest="learning_rate", type=float, help="learning rate (heads, DFE, decoder)")
    g.add_argument("--unlabeled-weight", type=float, help="w_u in L = (1 - w_u) L_l + w_u L_u (plans.json: training.unlabeled_weight)")
    g.add_argument("--rampup-epochs", dest="unlabeled_rampup_epochs", type=int, help="SSL epochs over which the unlabeled weight ramps up to w_u (0: none)")
    g.add_argument("--pcsw-refresh-epochs", type=int, help="rebuild the PCSW bank every N epochs")
    g.add_argument("--batch-size", type=int, help="labeled and unlabeled slices per step (each)")
    g.add_argument("--unlabeled-batch-size", type=int, help="unlabeled slices per step (default: --batch-size or the plan's)")
    g.add_argument("--time-budget", dest="time_budget_min", type=float, metavar="MINUTES",
                   help="train for this wall-clock time: the epochs are derived from the measured step, validation "
                        "and bank-refresh times, and the LR is scheduled over them (--epochs is then ignored)")
    s = p.add_argument_group("SAM-2")
    s.add_argument("--sam2-checkpoint", type=Path, default=os.environ.get("SSS_SAM2_CHECKPOINT") or None,
                   help="official SAM-2 checkpoint of the planned variant (default: $SSS_SAM2_CHECKPOINT, else one "
                        "downloaded by sss_download_sam2; none: random initialisation, said in the log)")
    s.add_argument("--finetune-encoder", action="store_true", help="fine-tune a pretrained encoder at lr x encoder_lr_factor")
    a = p.add_argument_group("ablations")
    a.add_argument("--supervised-only", action="store_true", help="labeled data only")
    a.add_argument("--no-dfe", action="store_true", help="weak-to-strong without DFE")
    a.add_argument("--no-pcsw", action="store_true", help="no prompts (coarse output only)")
    a.add_argument("--no-refine", action="store_true", help="no SAM-2 prompt refinement")
    a.add_argument("--pcsw-tau", type=float, help="PCSW continuity threshold (plan default 0.8)")
    a.add_argument("--confidence-mode", choices=["global", "class_adaptive"], default=None,
                   help="pseudo-label confidence thresholds: one for all classes, or per class adapting to the "
                        "teacher's confidence (default: the plan's)")
    a.add_argument("--alignment", dest="pseudo_label_alignment", choices=["none", "prior"], default=None,
                   help="align the teacher's class shares to the labeled prior before taking pseudo labels "
                        "(default: the plan's)")
    a.add_argument("--strong-photometric", choices=["full", "mild"], default=None,
                   help="intensity jitter of the strong views (default: the plan's)")
    a.add_argument("--ema-restart", dest="ema_restart_at_ssl", action=argparse.BooleanOptionalAction, default=None,
                   help="restart the EMA teacher as a copy of the student when SSL starts (default: the plan's)")
    a.add_argument("--unready-gate", dest="unready_class_gate", action=argparse.BooleanOptionalAction, default=None,
                   help="keep classes the student has not yet learned on the labeled slices (running Dice < 0.5) "
                        "out of the unlabeled loss, with the pixels the teacher ranks highest for them "
                        "(default: the plan's; method.md \"Small and rare classes\")")
    a.add_argument("--unlabeled-ce", choices=["pixel", "class_balanced"], default=None,
                   help="unlabeled cross-entropy averaged over pixels, or per class over the classes present "
                        "(default: the plan's)")
    a.add_argument("--dfe-inputs", choices=["strong_pair", "weak_strong"], default=None,
                   help="which features DFE pairs (default: the plan's, strong_pair; weak_strong is the ablation "
                        "that lets the weak view's features reach the student)")
    a.add_argument("--strong-views", type=int, choices=[1, 2], default=2,
                   help="strong views per unlabeled image (SSS_METHOD: 2; 1 makes the SSS step cheaper)")
    r = p.add_argument_group("run")
    r.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    r.add_argument("--c", action="store_true", help="continue from the last checkpoint")
    r.add_argument("--val-only", action="store_true", help="only run the final validation of a finished fold")
    r.add_argument("--seed", type=int, default=0, help="seed of initialisation, data and strong views")
    r.add_argument("--num-workers", type=int, default=None, help="data loader workers (default: CPUs - 1, at most 8)")
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
    from sss_auto.configuration import Ablation
    from sss_auto.training.distributed import init_distributed, shutdown
    from sss_auto.training.options import OVERRIDABLE, make_train_config
    from sss_auto.training.run import train_fold

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SSSError("--device cuda: no CUDA device is available")
    dataset = find_dataset(args.dataset, paths.raw_roots())
    overrides = {name: getattr(args, name) for name in OVERRIDABLE}  # each flag's dest is its plans field
    ablation = Ablation(supervised_only=args.supervised_only, use_dfe=not args.no_dfe, use_pcsw=not args.no_pcsw,
                        refine=not args.no_refine, pcsw_tau=args.pcsw_tau, strong_views=args.strong_views,
                        dfe_inputs=args.dfe_inputs)
    workers = args.num_workers if args.num_workers is not None else max(1, min(8, (os.cpu_count() or 2) - 1))
    dist = init_distributed(device)
    config = make_train_config(dataset, args.configuration, args.fold, overrides=overrides, batch_size=args.batch_size,
                               unlabeled_batch_size=args.unlabeled_batch_size,
                               ablation=ablation, seed=args.seed, device=dist.device, sam2_checkpoint=args.sam2_checkpoint,
                               finetune_encoder=args.finetune_encoder, num_workers=workers,
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
