"""sss_download_sam2 --variant tiny|small|base_plus|large [--version 2.1|2.0]: fetch Meta's official weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from sss_auto.cli.common import add_common_options, run_command
from sss_auto.networks.checkpoints import DOWNLOADABLE


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Download an official SAM-2 checkpoint to the cache folder ($SSS_SAM2_DIR).")
    p.add_argument("--variant", required=True, choices=list(DOWNLOADABLE))
    p.add_argument("--version", choices=["2.1", "2.0"], default="2.1", help="SAM 2.1 (default) or the first release 2.0")
    p.add_argument("--dir", type=Path, help="target folder (default: $SSS_SAM2_DIR or ~/sss_data/sam2_checkpoints)")
    add_common_options(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from sss_auto.networks.checkpoints import download_checkpoint

    path = download_checkpoint(args.variant, args.version, args.dir, not args.no_progress)
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_run, _parser(), argv)
