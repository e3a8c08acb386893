"""sss_plan_and_preprocess, sss_extract_fingerprint, sss_plan and sss_preprocess."""

from __future__ import annotations

import argparse
from pathlib import Path

from sss_auto.cli.common import add_common_options, run_command
from sss_auto.networks.variants import VARIANTS

DEFAULT_PROCESSES = 2


def _parser(description: str, fingerprint: bool, planning: bool, preprocessing: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-d", required=True, metavar="DATASET", help="dataset name (BHSD), folder (Dataset501_BHSD) or id (501)")
    parser.add_argument("-np", type=int, default=DEFAULT_PROCESSES, help=f"worker processes (default {DEFAULT_PROCESSES})")
    if fingerprint:
        parser.add_argument("--clean", action="store_true", help="recompute the fingerprint even if fingerprint.json exists")
    if planning:
        parser.add_argument("--gpu-memory-gb", type=float, default=None,
                            help="plan for a CUDA GPU with this memory budget per training step in GiB (default: the "
                                 "detected GPU; without one, a plan for this CPU)")
        parser.add_argument("--sam2-variant", choices=list(VARIANTS), default=None,
                            help="force a SAM-2 variant (default: the largest with weights that fits; without weights "
                                 "the reduced 'test' Hiera, trained from scratch)")
        parser.add_argument("--sam2-checkpoint", type=Path, default=None,
                            help="official SAM-2 checkpoint to plan for (default: $SSS_SAM2_CHECKPOINT, else what "
                                 "sss_download_sam2 downloaded; none: the from-scratch plan)")
        parser.add_argument("--encoder", choices=["hiera", "conv"], default="hiera", help="image encoder (default hiera)")
        parser.add_argument("--method", choices=["auto", "full", "weak_to_strong"], default="auto",
                            help="SSS parts to plan: full (DFE, PCSW, SAM-2 refinement) or weak_to_strong (coarse head); "
                                 "auto (default): full with SAM-2 weights, weak_to_strong without (the benchmark's best "
                                 "semi-supervised variant from scratch)")
    if preprocessing:
        parser.add_argument("-c", nargs="+", default=["2d"], metavar="CONFIG", help="configurations to preprocess (default 2d)")
    add_common_options(parser)
    return parser


def _run(args: argparse.Namespace, fingerprint: bool, planning: bool, preprocessing: bool) -> int:
    # imported here, not at the top: worker processes re-import this module, and must not pay for torch
    from sss_auto import paths
    from sss_auto.dataset.raw import find_dataset
    from sss_auto.io.lock import folder_lock
    from sss_auto.stages import fingerprint_stage, plan_stage, preprocess_stage, preprocessed_folder

    dataset = find_dataset(args.d, paths.raw_roots())
    with folder_lock(preprocessed_folder(dataset)):  # one planning or preprocessing process per dataset
        fp = fingerprint_stage(dataset, args.np, getattr(args, "clean", False), not args.no_progress) if fingerprint or planning else None
        if planning:
            plan_stage(dataset, fp, args.gpu_memory_gb, args.sam2_variant, args.encoder, args.sam2_checkpoint, args.method)
        if preprocessing:
            preprocess_stage(dataset, args.c, args.np, not args.no_progress)
    print(f"done: {preprocessed_folder(dataset)}")
    return 0


def _command(description: str, fingerprint: bool, planning: bool, preprocessing: bool):
    def main(argv: list[str] | None = None) -> int:
        parser = _parser(description, fingerprint, planning, preprocessing)
        return run_command(lambda args: _run(args, fingerprint, planning, preprocessing), parser, argv)
    return main


main = _command("Fingerprint, plan and preprocess a raw dataset.", True, True, True)
extract_fingerprint_main = _command("Check a raw dataset and write its fingerprint.json.", True, False, False)
plan_main = _command("Write plans.json from the fingerprint (computed first if missing).", False, True, False)
preprocess_main = _command("Preprocess labeled and unlabeled cases with the plans.json on disk.", False, False, True)
