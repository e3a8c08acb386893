"""sss_make_demo: write the synthetic BHSD-like demo dataset into SSS_raw."""

from __future__ import annotations

import argparse

from sss_auto import paths
from sss_auto.cli.common import add_common_options, run_command
from sss_auto.dataset.demo import DemoSpec, make_demo_dataset

DEMO_FOLDER = "Dataset900_DemoBHSD"
FLAGS = {"rare_class_probability": "--rare-class", "heterogeneity": "--heterogeneity"}  # DemoSpec field -> option


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Write a synthetic BHSD-like head-CT dataset (labeled, unlabeled, test).")
    parser.add_argument("--labeled", type=int, default=DemoSpec.n_labeled, help="labeled cases")
    parser.add_argument("--unlabeled", type=int, default=DemoSpec.n_unlabeled, help="unlabeled cases")
    parser.add_argument("--test", type=int, default=DemoSpec.n_test, help="test cases (with labels in labelsTs)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same dataset)")
    parser.add_argument("--rare-class", type=float, default=DemoSpec.rare_class_probability, metavar="P",
                        help="add a small rare class (EDH, label 4) to this share of the cases (default: none)")
    parser.add_argument("--heterogeneity", type=float, default=DemoSpec.heterogeneity, metavar="H",
                        help="0..1: how much cases differ in scanner and anatomy (contrast, noise, blur, rotation, "
                             "head size; default 0: not at all)")
    parser.add_argument("-o", default=None, help=f"target folder (default: $SSS_raw/{DEMO_FOLDER})")
    add_common_options(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    target = Path(args.o) if args.o else paths.root("raw") / DEMO_FOLDER
    from sss_auto.errors import SSSError

    spec = DemoSpec(args.labeled, args.unlabeled, args.test, seed=args.seed, rare_class_probability=args.rare_class,
                    heterogeneity=args.heterogeneity)
    if problems := spec.range_problems():
        raise SSSError("; ".join(f"{FLAGS[name]} {problem}" for name, problem in problems))
    make_demo_dataset(target, spec)
    print(f"demo dataset written to {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_run, _parser(), argv)
