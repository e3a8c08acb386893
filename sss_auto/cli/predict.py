"""sss_predict -i INPUT -o OUTPUT: segment images with trained SSS folds, back in their original geometry."""

from __future__ import annotations

import argparse
from pathlib import Path

from sss_auto.cli.common import add_common_options, run_command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Segment a folder of images (or one image) with trained SSS models.")
    p.add_argument("-i", required=True, type=Path, metavar="INPUT", help="folder of <case>_0000.nii.gz (or <case>.nii.gz), or one file")
    p.add_argument("-o", required=True, type=Path, metavar="OUTPUT", help="output folder (never the input folder)")
    p.add_argument("-d", metavar="DATASET", help="dataset (needed when several trained models exist)")
    p.add_argument("-c", metavar="CONFIG", help="configuration, e.g. 2d")
    p.add_argument("-f", nargs="+", metavar="FOLD", help="folds to ensemble (default: every finished fold)")
    p.add_argument("--run", metavar="NAME", help="run name, e.g. SSS or SSS-supervised (default: the only one)")
    p.add_argument("--checkpoint", choices=["final", "best"], default="final", help="which checkpoint of each fold")
    p.add_argument("--weights", choices=["student", "teacher"], default="student",
                   help="the trained student or its EMA teacher (semi-supervised runs only)")
    p.add_argument("--disable-tta", action="store_true", help="no mirror test-time augmentation (4x faster)")
    p.add_argument("--coarse-only", action="store_true",
                   help="pass 1 only: the coarse head's prediction, no PCSW prompts or SAM-2 refinement (to compare)")
    p.add_argument("--save-probabilities", action="store_true",
                   help="also write the probabilities: <case>_probabilities.npz (with --output-format nnunet: "
                        "<case>.npz and <case>.pkl, as nnU-Net writes them)")
    p.add_argument("--output-format", choices=["sss", "nnunet"], default="sss",
                   help="nnunet: also dataset.json and plans.json in OUTPUT and nnU-Net's probability files, so "
                        "nnUNetv2_ensemble and nnUNetv2_evaluate_folder read the folder (documentation/cli.md)")
    p.add_argument("--disable-postprocessing", action="store_true",
                   help="do not apply the run's postprocessing.json (written by sss_find_best_configuration)")
    p.add_argument("--continue", dest="resume", action="store_true", help="skip cases whose output already exists")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first case that fails")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    p.add_argument("-np", type=int, default=2, help="worker processes for reading/preprocessing/export (0: none)")
    add_common_options(p)
    return p


def _run(args: argparse.Namespace) -> int:
    import logging
    from dataclasses import replace

    import torch

    from sss_auto import paths
    from sss_auto.errors import SSSError
    from sss_auto.inference.inputs import find_input_cases
    from sss_auto.inference.models import choose_run, find_trained_runs, load_run
    from sss_auto.inference.nnunet_layout import write_folder_files
    from sss_auto.inference.predictor import predict_cases
    from sss_auto.io.atomic import write_json_atomic
    from sss_auto.io.lock import folder_lock
    from sss_auto.postprocessing.components import describe_rules
    from sss_auto.postprocessing.determine import FILE_NAME, load_active_rules

    logger = logging.getLogger("sss_predict")
    source, output = args.i.resolve(), args.o.resolve()
    input_folder = source if source.is_dir() else source.parent
    if output == input_folder or input_folder in output.parents:
        raise SSSError(f"{args.o}: the output folder must not be (inside) the input folder {input_folder}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SSSError("--device cuda: no CUDA device is available")
    results = paths.root("results")
    run = choose_run(find_trained_runs(results, args.checkpoint), args.d, args.c, args.run, results)
    loaded = load_run(run, args.f, args.checkpoint, device, args.weights)
    cases, problems = find_input_cases(source, len(loaded.config.plans.channel_names))
    if problems and args.fail_fast:
        raise SSSError(problems[0].message)
    for problem in problems:
        print(f"error: {problem.message}")
    settings = replace(loaded.config.inference, tta=not args.disable_tta, device=device,
                       batch_size=max(2 * loaded.config.plan.batch_size_labeled, 1))
    if args.coarse_only:
        settings = replace(settings, use_prompts=False)
    rules = {}
    if (run.folder / FILE_NAME).is_file() and not args.disable_postprocessing:
        rules = load_active_rules(run.folder / FILE_NAME)
        logger.info("postprocessing from %s: %s", run.folder / FILE_NAME,
                    "; ".join(f"class {k}: {text}" for k, text in describe_rules(rules).items()) or "every class unchanged")
    nnunet_layout = args.output_format == "nnunet"
    with folder_lock(output):  # one sss_predict per output folder
        if nnunet_layout:
            output.mkdir(parents=True, exist_ok=True)
            write_folder_files(output, run.folder / "dataset.json", run.dataset)
        report = predict_cases(cases, loaded, output, settings, args.resume, args.save_probabilities, args.fail_fast,
                               args.np, not args.no_progress, rules, nnunet_layout)
        write_json_atomic({"model": str(run.folder), "folds": list(args.f or run.folds), "checkpoint": args.checkpoint,
                           "weights": args.weights, "coarse_only": args.coarse_only,
                           "output_format": args.output_format,
                           "postprocessing": describe_rules(rules),
                           "tta": settings.tta, "device": device, "predicted": report.done, "skipped": report.skipped,
                           "failed": {p.case_id: p.message for p in problems + report.failed}}, output / "prediction_info.json")
    failed = problems + report.failed
    print(f"done: {len(report.done)} predicted, {len(report.skipped)} skipped, {len(failed)} failed; outputs in {output}")
    for problem in report.failed:
        print(f"error: {problem.message}")
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_run, _parser(), argv)
