"""Run a command and sample the resident memory of its whole process tree from /proc (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Measured:
    """One command: exit code, wall time, peak RSS of the process tree and of its largest process (MiB)."""

    command: str
    returncode: int
    wall_s: float
    peak_tree_mib: float
    peak_process_mib: float
    killed: bool
    lines: list[tuple[float, str]] = field(default_factory=list, repr=False)

    def seconds_at(self, text: str) -> float | None:
        """When the first stderr line containing `text` arrived (seconds after the start), or None."""
        return next((t for t, line in self.lines if text in line), None)


def _tree(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure(args: list[str], env: dict, kill_when=None, timeout: float = 3600) -> Measured:
    """Run `args`, sampling RSS; kill -9 its process group once `kill_when()` is true.

    Every stderr line is kept with the seconds since the start at which it arrived (`Measured.lines`),
    so phases can be timed from the log messages that open and close them.
    """
    start = time.time()
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True, text=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.time() - start, line) for line in process.stderr),
                              daemon=True)
    reader.start()
    peak_tree = peak_process = 0.0
    killed = False
    while process.poll() is None and time.time() < start + timeout:
        sizes = [_rss_mib(pid) for pid in _tree(process.pid)]
        peak_tree, peak_process = max(peak_tree, sum(sizes)), max([peak_process, *sizes])
        if kill_when is not None and kill_when():
            os.killpg(process.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.1)
    process.wait()
    reader.join(timeout=10)
    if process.returncode != 0 and not killed:
        raise SystemExit(f"{' '.join(args)} failed ({process.returncode}):\n{''.join(l for _, l in lines)[-3000:]}")
    return Measured(" ".join(Path(a).name if "/" in a else a for a in args), process.returncode,
                    round(time.time() - start, 1), round(peak_tree), round(peak_process), killed, lines)


