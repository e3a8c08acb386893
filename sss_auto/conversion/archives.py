"""Unpack release zips safely (no member may land outside the extraction folder)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from sss_auto.errors import DatasetError


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
