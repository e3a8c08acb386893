"""The PCSW bank on disk: its own verified file per refresh, which the epoch checkpoints name.

On BHSD-sized pools the bank (the kept objects of every unlabeled volume) is hundreds of MiB; inside
every checkpoint it would be written again each epoch. It changes only at a refresh, so it is written
once per refresh (`pcsw_bank_epoch_XXXX.pt`, atomic, with its BLAKE2b digest like a checkpoint), and
the checkpoints hold {"file", "blake2b"} instead. Files no checkpoint names any more are removed
after each save; a bank that was never built stays inline (a few bytes).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sss_auto.errors import CheckpointError
from sss_auto.io.checkpoint import load_checkpoint, save_checkpoint, state_digest
from sss_auto.prompting.bank import PromptBank

logger = logging.getLogger(__name__)
BANK_FILES = "pcsw_bank_epoch_*.pt"


def bank_file_name(epoch: int) -> str:
    return f"pcsw_bank_epoch_{epoch:04d}.pt"


def save_bank(bank: PromptBank, folder: Path) -> dict:
    """Write the bank as its own verified file; returns the reference a checkpoint stores."""
    path = Path(folder) / bank_file_name(bank.epoch)
    digest = save_checkpoint(bank.state_dict(), path)
    logger.info("PCSW bank of %d case(s) written to %s (%.1f MiB)", len(bank.objects), path, path.stat().st_size / 2**20)
    return {"file": path.name, "blake2b": digest}


def load_bank(entry: dict, folder: Path) -> tuple[PromptBank, dict | None]:
    """A checkpoint's bank and its file reference (None when it is inline: never built, or an older checkpoint).

    A referenced file that is missing is logged and the bank rebuilt at the next SSL epoch; one whose
    content is not the referenced one raises CheckpointError (from the verification).
    """
    if "file" not in entry:
        return PromptBank.from_state_dict(entry), None
    path = Path(folder) / entry["file"]
    if not path.is_file():
        logger.warning("%s: the PCSW bank this checkpoint names is missing; it is rebuilt at the next semi-supervised "
                       "epoch (results will differ slightly from an uninterrupted run)", path)
        return PromptBank(), None
    state = load_checkpoint(path)
    if state_digest(state) != entry["blake2b"]:
        raise CheckpointError(f"{path}: not the PCSW bank the checkpoint names (digest differs); delete it to rebuild")
    state.pop("format_version", None)
    return PromptBank.from_state_dict(state), entry


def prune_banks(folder: Path, keep: list[dict | None]) -> None:
    """Remove bank files that none of the `keep` references name."""
    names = {ref["file"] for ref in keep if ref}
    for path in Path(folder).glob(BANK_FILES):
        if path.name not in names:
            path.unlink(missing_ok=True)
