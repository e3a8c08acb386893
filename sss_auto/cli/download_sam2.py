"""sss_download_sam2 --variant tiny|small|base_plus|large [--version 2.1|2.0] [--source meta|medsam2]: fetch SAM-2 weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from sss_auto.cli.common import add_common_options, run_command
from sss_auto.networks.checkpoints import DOWNLOADABLE, SOURCES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Download a published SAM-2 checkpoint to the cache folder ($SSS_SAM2_DIR).")
    p.add_argument("--variant", required=True, choices=list(DOWNLOADABLE))
    p.add_argument("--source", choices=list(SOURCES), default="meta",
                   help="meta: Meta's official SAM 2.1/2.0 weights (default); medsam2: MedSAM2_latest.pt, SAM 2.1 "
                        "Hiera-tiny fine-tuned on medical volumes (wanglab/MedSAM2 on Hugging Face; --variant tiny)")
    p.add_argument("--version", choices=["2.1", "2.0"], default="2.1", help="SAM 2.1 (default) or the first release 2.0")
    p.add_argument("--dir", type=Path, help="target folder (default: $SSS_SAM2_DIR or ~/sss_data/sam2_checkpoints)")
    add_common_options(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from sss_auto.networks.checkpoints import download_checkpoint

    path = download_checkpoint(args.variant, args.version, args.dir, not args.no_progress, source=args.source)
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_run, _parser(), argv)
