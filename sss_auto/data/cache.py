"""Read-only access to a configuration's preprocessed cache (SSS_preprocessed/<ds>/<config>/)."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from preprocessing.case import CachedCase
from preprocessing.runner import CacheEntry, load_cache_entry, load_cached_array
from sss_auto.errors import CacheError
from sss_auto.io.atomic import read_json, write_json_atomic

logger = logging.getLogger(__name__)


VERIFIED_STAMP = "verified_arrays.stamp"  # not *.json: every *.json in the folder is a case entry


def _size_and_mtime(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


def _read_stamp(path: Path) -> dict[str, list]:
    try:
        data = read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class CaseCache:
    """The cached cases of one configuration folder, by subset.

    A case's entry (its JSON) is read when the case is first used, so opening the cache costs one
    folder listing, not one read per case: a loader worker that samples a few dozen cases of a pool
    of thousands reads only those (benchmarks/scale.py).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CacheError(f"{self.folder}: no preprocessed cases; run sss_plan_and_preprocess first")
        self._paths = {p.stem: p for p in sorted(self.folder.glob("*.json"))}
        if not self._paths:
            raise CacheError(f"{self.folder}: no preprocessed cases; run sss_plan_and_preprocess first")
        self._entries: dict[str, CacheEntry] = {}

    @property
    def entries(self) -> dict[str, CacheEntry]:
        """Every case's entry, by case id (reads the entries not read yet)."""
        return {case_id: self._entry(case_id) for case_id in self._paths}

    def ids(self, subset: str) -> list[str]:
        """Case ids of "labeled" or "unlabeled" cases."""
        return [case_id for case_id, entry in self.entries.items() if entry.subset == subset]

    def verify(self, case_ids: list[str], progress: bool = True, rehash_all: bool = False) -> int:
        """Check the arrays of these cases against the size and digest recorded at write time.

        An array whose digest was checked before (recorded in VERIFIED_STAMP) and whose size and
        modification time have not changed since is not hashed again, unless `rehash_all`; a
        changed, truncated or rewritten file always is. Returns the number of arrays hashed now.
        """
        stamp = self.folder / VERIFIED_STAMP
        known = {} if rehash_all else _read_stamp(stamp)
        checked: dict[str, list] = {}
        hashed = 0
        for case_id in tqdm(case_ids, desc="verify cache", unit="case", disable=None if progress else True):
            entry = self._entry(case_id)
            for name, record in entry.arrays.items():
                path = self.folder / str(record["file"])
                state = [record["blake2b"], *_size_and_mtime(path)]
                if known.get(path.name) != state:
                    load_cached_array(self.folder, entry, name, verify=True, mmap=True)  # raises naming the file
                    hashed += 1
                checked[path.name] = state
        if hashed:
            try:
                write_json_atomic({**known, **checked}, stamp)
            except OSError as err:  # a read-only cache still trains; it is hashed again next time
                logger.warning("%s: could not record the verified arrays (%s)", stamp, err)
        return hashed

    def load(self, case_id: str) -> CachedCase:
        """Memory-map one case's arrays (sizes checked; digests were checked by `verify`)."""
        entry = self._entry(case_id)
        arrays = {name: load_cached_array(self.folder, entry, name, verify=False, mmap=True) for name in entry.arrays}
        return CachedCase(arrays["data"], arrays.get("seg"), arrays["foreground"], entry.properties)

    def _entry(self, case_id: str) -> CacheEntry:
        if case_id not in self._entries:
            if case_id not in self._paths:
                raise CacheError(f"{self.folder}: case {case_id!r} is not preprocessed; re-run sss_preprocess")
            self._entries[case_id] = load_cache_entry(self._paths[case_id])
        return self._entries[case_id]
