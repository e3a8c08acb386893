"""One writer per folder: an advisory lock file that names its holder.

Two processes writing the same preprocessed folder, run folder or prediction folder (a cluster job
submitted twice, a second terminal) would interleave their files. `folder_lock` takes an exclusive
`fcntl.flock` on `<folder>/.sss.lock` and writes the holder (pid, host, command, start time) into it;
a second process is refused with an `FolderInUse` error naming the holder. A reader that must not
see the folder change under it (training reads the preprocessed cache) holds a shared lock: any
number of readers, no writer meanwhile. The operating system
releases a flock when its process ends, however it ends, so the lock of a process killed with
SIGKILL is never stale: the next process takes it over and says whose it was. A clean exit removes
the file. On network file systems the lock is as good as their flock (Linux NFS clients emulate it
with byte-range locks the server enforces).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sss_auto.errors import SSSError

logger = logging.getLogger(__name__)
LOCK_NAME = ".sss.lock"


class FolderInUse(SSSError):
    """Another live process holds a folder's lock."""


def _describe(holder: dict) -> str:
    if not holder:
        return "another process (its lock file names no holder yet)"
    return (f"pid {holder.get('pid')} on {holder.get('host')} (`{holder.get('command')}`, since "
            f"{holder.get('started')})")


def _read_holder(handle) -> dict:
    try:
        handle.seek(0)
        holder = json.loads(handle.read() or "{}")
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _open_locked(path: Path, shared: bool):
    """An open handle of `path` that holds its flock, or raises FolderInUse naming the holder."""
    while True:
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(handle)
            handle.close()
            if shared:
                raise FolderInUse(f"{path.parent}: being written by {_describe(holder)}; wait until it has "
                                  "finished") from None
            raise FolderInUse(f"{path.parent}: in use by {_describe(holder) if holder else 'a running training (it reads this folder)'}; "
                              "wait for it to finish or stop it (two processes writing one folder would interleave "
                              "their files)") from None
        except OSError:
            handle.close()
            raise
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()  # the holder removed the file between our open and our lock: lock the new one


@contextmanager
def folder_lock(folder: Path, shared: bool = False) -> Iterator[None]:
    """Hold `<folder>/.sss.lock` for the duration of the block (the folder is created, and removed again if left empty).

    Args:
        shared: a reader's lock: held by any number of processes at once, never beside a writer's.

    Raises:
        FolderInUse: another live process holds it (a writer: named in the message).
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        handle = _open_locked(path, shared)
    except BaseException:
        _remove_if_empty(folder, created)
        raise
    if shared:
        try:
            yield
        finally:
            handle.close()  # the file stays: other readers may hold it
        return
    try:
        previous = _read_holder(handle)
        if previous and previous.get("pid") != os.getpid():
            logger.warning("%s: taking over the lock of %s, which ended without releasing it", folder, _describe(previous))
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(Path(sys.argv[0]).name.split()
                   + sys.argv[1:]), "started": time.strftime("%Y-%m-%d %H:%M:%S")}, handle)
        handle.flush()
        yield
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        handle.close()
        _remove_if_empty(folder, created)


def _remove_if_empty(folder: Path, created: bool) -> None:
    """A folder the lock created and nothing filled is removed again (a refused or failed command leaves nothing)."""
    if created:
        try:
            folder.rmdir()
        except OSError:
            pass
