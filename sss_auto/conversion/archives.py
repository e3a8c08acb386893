"""File handling of converters: safe zip extraction (no member outside the folder) and atomic copies."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from sss_auto.errors import DatasetError
from sss_auto.io.atomic import atomic_path


def extract_zip(archive: Path, folder: Path) -> Path:
    """Extract `archive` into `folder` and return `folder`.

    Raises:
        DatasetError: not a zip file, or a member path that escapes the folder (`..`, absolute).
    """
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    try:
        with zipfile.ZipFile(archive) as handle:
            for member in handle.namelist():
                destination = (root / member).resolve()
                if root != destination and root not in destination.parents:
                    raise DatasetError(f"{archive}: member {member!r} would be written outside {folder}; refusing the archive")
            handle.extractall(root)
    except zipfile.BadZipFile as err:
        raise DatasetError(f"{archive}: not a readable zip file ({err})") from err
    return folder


def copy_atomic(source: Path, target: Path) -> None:
    """Copy a file so that `target` is either absent or complete."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
