"""sss_convert_bhsd and sss_convert_acdc: public releases → SSS_raw/DatasetXXX_Name."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from sss_auto.cli.common import add_common_options, run_command


def _bhsd_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Convert the BHSD release (label_192, unlabel_2000/1980, optional dataset.json).")
    p.add_argument("source", type=Path, help="folder holding the release folders or zips, or one zip")
    p.add_argument("-d", type=int, default=501, metavar="ID", help="dataset id: writes DatasetID_BHSD (default 501)")
    p.add_argument("--labeled", help="keep N (e.g. 10) or a share (e.g. 10%%) of the labeled training cases; the rest "
                                     "become unlabeled (seeded)")
    p.add_argument("--seed", type=int, default=0, help="seed of the labeled subset (default 0)")
    add_common_options(p)
    return p


def _write_dataset(name: str, dataset_id: int, convert: Callable[[Path], dict]) -> tuple[Path, dict]:
    """Run `convert` into $SSS_raw/DatasetXXX_<name> (never over an existing dataset) and check the result."""
    from sss_auto import paths
    from sss_auto.dataset.integrity import check_dataset_structure
    from sss_auto.dataset.raw import load_dataset
    from sss_auto.errors import DatasetError

    target = paths.root("raw") / f"Dataset{dataset_id:03d}_{name}"
    if (target / "dataset.json").exists():
        raise DatasetError(f"{target}: already exists; remove it or choose another id with -d")
    counts = convert(target)
    check_dataset_structure(load_dataset(target))
    return target, counts


def _bhsd(args: argparse.Namespace) -> int:
    from sss_auto.conversion.bhsd import convert_bhsd

    target, counts = _write_dataset("BHSD", args.d, lambda t: convert_bhsd(args.source, t, args.labeled, args.seed,
                                                                            not args.no_progress))
    print(f"done: {counts['labeled']} labeled, {counts['test']} test, {counts['unlabeled']} unlabeled case(s) in {target}")
    return 0


def bhsd_main(argv: list[str] | None = None) -> int:
    return run_command(_bhsd, _bhsd_parser(), argv)


def _acdc_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Convert the CREATIS ACDC release with the standard semi-supervised split.")
    p.add_argument("source", type=Path, help="the release folder (holding training/) or its zip")
    p.add_argument("-d", type=int, default=27, metavar="ID", help="dataset id: writes DatasetID_ACDC (default 27)")
    p.add_argument("--labeled-cases", type=int, default=7, help="labeled training patients: 3 or 7 as in the literature (default 7)")
    p.add_argument("--cine-unlabeled", action="store_true", help="add every other cine frame of the training patients as unlabeled")
    p.add_argument("--split", type=Path, help="JSON with labeled/unlabeled/val/test patient lists (replaces the standard split)")
    p.add_argument("--include-testing", action="store_true", help="also convert testing/ (patients 101-150) into imagesTs")
    add_common_options(p)
    return p


def _acdc(args: argparse.Namespace) -> int:
    from sss_auto.conversion.acdc import convert_acdc

    target, counts = _write_dataset("ACDC", args.d, lambda t: convert_acdc(args.source, t, args.labeled_cases,
                                                                            args.cine_unlabeled, args.split, args.include_testing,
                                                                            not args.no_progress))
    print(f"done: {counts['labeled']} labeled frames (incl. validation), {counts['test']} test, {counts['unlabeled']} "
          f"unlabeled in {target}; fold 0 of its splits_final.json is the standard validation split")
    return 0


def acdc_main(argv: list[str] | None = None) -> int:
    return run_command(_acdc, _acdc_parser(), argv)
