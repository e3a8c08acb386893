"""sss_find_best_configuration -d DATASET: the best cross-validated run, its postprocessing, how to predict with it."""

from __future__ import annotations

import argparse

from sss_auto.cli.common import add_common_options, run_command
from sss_auto.dataset.splits import ALL_FOLDS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Rank the finished five-fold runs of a dataset by cross-validation Dice, "
                                            "choose per-class postprocessing for each, and write how to predict with the best.")
    p.add_argument("-d", required=True, metavar="DATASET", help="dataset name, folder or id")
    p.add_argument("-c", nargs="+", metavar="CONFIG", help="configurations to consider (default: all)")
    p.add_argument("--runs", nargs="+", metavar="RUN", help="run names to consider, e.g. SSS SSS-supervised (default: all)")
    p.add_argument("-f", nargs="+", default=list(ALL_FOLDS), metavar="FOLD",
                   help="folds that must have finished (default: all five)")
    p.add_argument("--disable-ensembling", action="store_true",
                   help="do not try ensembles of pairs of runs (they need sss_train --save-probabilities validations)")
    add_common_options(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from sss_auto import paths
    from sss_auto.dataset.raw import find_dataset
    from sss_auto.errors import SSSError
    from sss_auto.evaluation.summarize import class_names
    from sss_auto.postprocessing.best_configuration import (cross_validated_runs, evaluate_ensembles, evaluate_run, rank,
                                                            write_instructions)

    dataset = find_dataset(args.d, paths.raw_roots())
    results = paths.root("results") / dataset.name
    if not results.is_dir():
        raise SSSError(f"{results}: nothing trained for {dataset.name} yet")
    folds = tuple(args.f)
    folders, skipped = cross_validated_runs(results, args.c, args.runs, folds)
    for reason in skipped:
        print(f"skipped: {reason}")
    if not folders:
        raise SSSError(f"{results}: no run has finished the validation of fold(s) {', '.join(folds)}"
                       + (f" ({'; '.join(skipped)})" if skipped else ""))
    evaluated = [evaluate_run(folder, dataset.folder / "labelsTr", folds, not args.no_progress) for folder in folders]
    if not args.disable_ensembling and len(folders) > 1:
        ensembles, left_out = evaluate_ensembles(results, folders, dataset.folder / "labelsTr", folds, not args.no_progress)
        evaluated += ensembles
        for reason in left_out:
            print(f"skipped: {reason}")
    ranked = rank(evaluated)
    names = class_names(folders[0])
    for entry in ranked:
        print(f"\n{entry['run']}: {entry['n_cases']} validation case(s), mean Dice {entry['dice']:.4f} -> "
              f"{entry['dice_postprocessed']:.4f} with postprocessing")
        for value, rule in entry["postprocessing"].items():
            print(f"  {names.get(value, value):<12} {entry['dice_per_class'][value]:.4f} -> "
                  f"{entry['dice_per_class_postprocessed'][value]:.4f}  ({rule})")
    instructions = write_instructions(results, dataset.name, ranked, folds)
    print(f"\nbest: {ranked[0]['run']}; postprocessing.json in each run (and ensemble) folder; how to predict: {instructions}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_run, _parser(), argv)
