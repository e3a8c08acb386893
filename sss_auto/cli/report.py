"""sss_report -d DATASET: an index.html for every trained fold (settings, progress, validation, overlays)."""

from __future__ import annotations

import argparse

from sss_auto.cli.common import add_common_options, run_command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Write fold_X/report/index.html for every fold that finished its validation: "
                                            "settings, progress.png, per-class validation table, coarse vs fused Dice, "
                                            "PCSW prompt quality, overlays of the best, median and worst case, and the "
                                            "cross-validation table once all five folds exist.")
    p.add_argument("-d", required=True, metavar="DATASET", help="dataset name, folder or id")
    p.add_argument("-c", metavar="CONFIG", help="only this configuration, e.g. 2d")
    p.add_argument("--run", metavar="NAME", help="only this run, e.g. SSS or SSS-supervised")
    p.add_argument("-f", nargs="+", metavar="FOLD", help="only these folds")
    add_common_options(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from sss_auto import paths
    from sss_auto.dataset.raw import find_dataset
    from sss_auto.errors import SSSError
    from sss_auto.report.run_report import write_fold_report

    dataset = find_dataset(args.d, paths.raw_roots())
    results = paths.root("results") / dataset.name
    folds = []
    for run_folder in sorted(results.glob("*__*")) if results.is_dir() else []:
        run, _, configuration = run_folder.name.rpartition("__")
        if (args.c and configuration != args.c) or (args.run and run != args.run):
            continue
        folds += [f for f in sorted(run_folder.glob("fold_*")) if (f / "validation" / "summary.json").is_file()
                  and (not args.f or f.name[len("fold_"):] in args.f)]
    if not folds:
        raise SSSError(f"{results}: no fold matching the options has finished its validation yet")
    for fold in folds:
        print(f"{fold.parent.name} {fold.name}: {write_fold_report(fold, dataset.folder)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_run, _parser(), argv)
