"""What every command shares: logging set-up and turning SSSError into `error: ...` and exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from sss_auto.errors import SSSError


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run_command(body: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse `argv`, set up logging, run `body`; user errors print `error: ...` and return 2."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s", force=True)
    for noisy in ("matplotlib", "PIL", "hydra"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return body(args)
    except SSSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and a re-run continues from it", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
