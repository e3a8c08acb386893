"""sss_evaluate (a prediction folder against references) and sss_summarize (cross-validation table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sss_auto.cli.common import add_common_options, run_command
from sss_auto.evaluation.conventions import CONVENTIONS, NNUNET, convention


def _evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Dice, IoU, HD95, ASD and volumes per case and class; writes summary.json and per_case.csv.")
    p.add_argument("-ref", required=True, type=Path, metavar="LABELS", help="folder of reference labels <case>.nii.gz")
    p.add_argument("-pred", required=True, type=Path, metavar="PREDICTIONS", help="folder of predictions <case>.nii.gz")
    p.add_argument("-d", metavar="DATASET", help="dataset whose dataset.json names the classes (default: values found)")
    p.add_argument("-o", type=Path, metavar="FILE", help="summary file (default: PREDICTIONS/summary.json)")
    p.add_argument("--convention", choices=list(CONVENTIONS), default=NNUNET.name,
                   help="how empty masks count and in which unit distances are reported: nnunet (default: a class "
                        "absent from both masks is left out), ssl4mis (it scores Dice 0; HD95/ASD also in voxels) or "
                        "mbhseg (the MBH-Seg challenge's per-case score: mean Dice over the classes in the reference, "
                        "a case without hemorrhage scored by its false-positive voxels); documentation/evaluation.md")
    add_common_options(p)
    return p


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from sss_auto import paths
    from sss_auto.dataset.raw import find_dataset
    from sss_auto.errors import DatasetError
    from sss_auto.evaluation.evaluate import evaluate_folders, format_table, write_summary
    from sss_auto.io.nifti import read_image

    if args.d:
        labels = find_dataset(args.d, paths.raw_roots()).labels
    else:
        references = sorted(args.ref.glob("*.nii.gz")) if args.ref.is_dir() else []
        if not references:
            raise DatasetError(f"{args.ref}: no reference label (.nii.gz) found")
        values = sorted({int(v) for path in references for v in np.unique(np.rint(read_image(path)[0]))} - {0})
        labels = {str(v): v for v in values}
    classes = sorted(v for v in labels.values() if v > 0)
    summary = evaluate_folders(args.ref, args.pred, classes, not args.no_progress, convention(args.convention))
    target = args.o or args.pred / "summary.json"
    names = {str(v): k for k, v in labels.items()}
    table = write_summary(summary, target, names)
    print(format_table(summary, names))
    print(f"{summary['n_cases']} case(s), convention {summary['convention']}; summary written to {target}, per case and class to {table}")
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    return run_command(_evaluate, _evaluate_parser(), argv)


def _summarize_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Cross-validation table of every trained run of a dataset.")
    p.add_argument("-d", required=True, metavar="DATASET", help="dataset name, folder or id")
    p.add_argument("-c", metavar="CONFIG", help="only this configuration")
    add_common_options(p)
    return p


def _summarize(args: argparse.Namespace) -> int:
    from sss_auto import paths
    from sss_auto.dataset.raw import matches_dataset
    from sss_auto.errors import SSSError
    from sss_auto.evaluation.evaluate import format_table
    from sss_auto.evaluation.summarize import best_run, class_names, summarize_run
    from sss_auto.io.atomic import write_json_atomic

    results = paths.root("results")
    datasets = [p for p in sorted(results.iterdir()) if p.is_dir() and matches_dataset(p.name, args.d)] if results.is_dir() else []
    if len(datasets) != 1:
        raise SSSError(f"{results}: {'no' if not datasets else 'several'} trained dataset(s) match {args.d!r}")
    summaries = []
    for run_folder in sorted(p for p in datasets[0].iterdir() if "__" in p.name and (p / "dataset.json").is_file()):
        if args.c and not run_folder.name.endswith(f"__{args.c}"):
            continue
        try:
            summary = summarize_run(run_folder)
        except SSSError as err:
            print(f"skipped: {err}")
            continue
        write_json_atomic(summary, run_folder / "cv_summary.json")
        names = class_names(run_folder)
        print(f"\n{run_folder.name}: folds {', '.join(summary['folds'])}, {summary['n_cases']} validation case(s)")
        print(format_table(summary, names))
        summaries.append(summary)
    if not summaries:
        raise SSSError(f"{datasets[0]}: no run has a finished fold validation yet")
    best = best_run(summaries)
    print(f"\nbest: {best['run']} (mean Dice {best['mean']['dice']:.4f}); cv_summary.json written in each run folder")
    return 0


def summarize_main(argv: list[str] | None = None) -> int:
    return run_command(_summarize, _summarize_parser(), argv)
