"""Atomic file writes: write to a temporary file in the target folder, fsync, then os.replace.

A reader never sees a half-written file: either the old file, the new complete file, or none.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import shutil
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from sss_auto.errors import SSSError

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on failure it is removed.

    A full disk (ENOSPC, EDQUOT) becomes an SSSError naming the target; the old file stays intact.

    Args:
        target: final path of the file.

    Yields:
        A temporary path in the same folder (same file system, so the rename is atomic). The
        temporary name keeps the target's suffixes so writers that look at the extension work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise SSSError(f"{target}: no space left on the device ({err.strerror}); nothing was written, "
                           "free space and run the command again") from err
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


TEMPORARY_PATTERN = ".*.tmp*"  # the names atomic_path gives its temporary files


def remove_stale_temporaries(folder: Path) -> int:
    """Delete (and log) temporary files that a killed writer left in `folder`; returns how many.

    They are never trusted. Call it only where no other process is writing into `folder` (a re-run
    or --continue of the command that owns it); a missing folder has none.
    """
    stale = [p for p in Path(folder).glob(TEMPORARY_PATTERN) if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        logger.info("removed %d temporary file(s) left by an interrupted run in %s", len(stale), folder)
    return len(stale)


def write_atomic(target: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically through a callback that receives an open binary handle."""
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        write(handle)


def write_json_atomic(data: object, target: Path) -> None:
    """Write `data` as indented JSON (keys in insertion order) atomically; NaN and ±inf become null."""
    text = json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"
    write_atomic(target, lambda handle: handle.write(text.encode("utf-8")))


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def copy_atomic(source: Path, target: Path) -> None:
    """Copy a file so that `target` is either absent, the old file, or the complete copy."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def save_npy_atomic(array: np.ndarray, target: Path) -> None:
    """Save one numpy array as .npy atomically (no pickled objects)."""
    write_atomic(target, lambda handle: np.save(handle, array, allow_pickle=False))


def read_json(path: Path) -> object:
    """Read a JSON file; malformed JSON raises ValueError naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
