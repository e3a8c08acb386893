"""sss_ensemble -i A B [...] -o OUTPUT: average the saved probabilities of several prediction folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from sss_auto.cli.common import add_common_options, run_command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Ensemble prediction folders written with --save-probabilities: the "
                                            "probabilities of each case are averaged and the argmax written.")
    p.add_argument("-i", nargs="+", required=True, type=Path, metavar="FOLDER",
                   help="two or more sss_predict --save-probabilities output folders holding the same cases")
    p.add_argument("-o", required=True, type=Path, metavar="OUTPUT", help="output folder (not one of the inputs)")
    p.add_argument("--postprocessing", type=Path, metavar="JSON",
                   help="postprocessing.json to apply to the ensembled label maps (sss_find_best_configuration "
                        "writes one per ensemble; inference_instructions.txt names it)")
    p.add_argument("--save-probabilities", action="store_true", help="also write the averaged <case>_probabilities.npz")
    add_common_options(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from sss_auto.inference.ensemble import ensemble_folders
    from sss_auto.io.atomic import write_json_atomic
    from sss_auto.io.lock import folder_lock
    from sss_auto.postprocessing.components import describe_rules
    from sss_auto.postprocessing.determine import load_active_rules

    rules = load_active_rules(args.postprocessing) if args.postprocessing else {}
    with folder_lock(args.o):  # one writer per output folder
        cases = ensemble_folders(args.i, args.o, rules, not args.no_progress, args.save_probabilities)
        write_json_atomic({"inputs": [str(f.resolve()) for f in args.i], "cases": cases,
                           "postprocessing": describe_rules(rules),
                           "postprocessing_file": str(args.postprocessing.resolve()) if args.postprocessing else None},
                          args.o / "ensemble_info.json")
    print(f"done: {len(cases)} case(s) ensembled from {len(args.i)} folders into {args.o}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_run, _parser(), argv)
