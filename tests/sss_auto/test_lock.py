"""Folder locks between real processes: refused while held, taken over after the holder is killed."""

import os
import signal
import subprocess
import sys

import pytest

from sss_auto.io.lock import LOCK_NAME, FolderInUse, folder_lock

HOLDER = """
import sys, time
from sss_auto.io.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    """A second Python process that holds tmp_path/work's lock until it is killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "work")], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_second_process_is_refused_with_the_holder_named_then_takes_over_after_a_kill_9(tmp_path, holder, caplog):
    work = tmp_path / "work"
    with pytest.raises(FolderInUse, match=f"in use by pid {holder.pid} on .* since"):
        with folder_lock(work):
            pass
    with pytest.raises(FolderInUse, match=f"being written by pid {holder.pid}"):
        with folder_lock(work, shared=True):
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (work / LOCK_NAME).is_file(), "a killed holder leaves its file, but not its lock"
    with folder_lock(work):
        assert f'"pid": {os.getpid()}' in (work / LOCK_NAME).read_text()
    assert f"taking over the lock of pid {holder.pid}" in caplog.text
    assert not (work / LOCK_NAME).exists(), "a clean exit removes the lock file"


def test_a_lock_of_an_empty_new_folder_leaves_nothing_and_a_used_folder_keeps_its_files(tmp_path):
    with folder_lock(tmp_path / "new"):
        assert (tmp_path / "new" / LOCK_NAME).is_file()
    assert not (tmp_path / "new").exists()
    with folder_lock(tmp_path / "used"):
        (tmp_path / "used" / "result.json").write_text("{}")
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["result.json"]


def test_readers_share_a_folder_and_keep_writers_out(tmp_path):
    with folder_lock(tmp_path / "cache", shared=True), folder_lock(tmp_path / "cache", shared=True):
        with pytest.raises(FolderInUse, match="in use by a running training"):
            with folder_lock(tmp_path / "cache"):
                pass
    with folder_lock(tmp_path / "cache"):
        pass


def test_a_held_folder_is_exclusive_even_within_one_process_and_free_again_once_released(tmp_path):
    with folder_lock(tmp_path / "again"):
        with pytest.raises(FolderInUse, match=f"in use by pid {os.getpid()}"):
            with folder_lock(tmp_path / "again"):
                pass
        (tmp_path / "again" / "x").touch()
    with folder_lock(tmp_path / "again"):
        assert (tmp_path / "again" / "x").is_file()
