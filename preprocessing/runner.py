"""Preprocess every case of a dataset into the cache, in parallel, resumably.

Cache layout (SSS_preprocessed/<dataset>/<configuration>/):
    <case>.npy        float32 (C, z, y, x) normalized image
    <case>_seg.npy    int16 (z, y, x) label (labeled cases only)
    <case>_fg.npy     int32 (N, 4) sampled foreground voxels (class, z, y, x)
    <case>.json       properties, subset, input signature, size and BLAKE2 digest of each array

Each array is written atomically, and the JSON last: a case is finished exactly when its JSON
exists, its signature matches the current inputs and plans, and its arrays have the recorded sizes.
A re-run (also after kill -9) skips finished cases and redoes the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planners.plans import Plans
from preprocessing.case import CaseProperties, preprocess_case
from sss_auto.dataset.integrity import read_case
from sss_auto.dataset.raw import Case
from sss_auto.errors import CacheError
from sss_auto.io.atomic import read_json, remove_stale_temporaries, save_npy_atomic, write_json_atomic
from sss_auto.io.serialization import SchemaError, from_dict, to_dict
from sss_auto.parallel import map_unordered

logger = logging.getLogger(__name__)
ARRAY_SUFFIXES = {"data": ".npy", "seg": "_seg.npy", "foreground": "_fg.npy"}


@dataclass(frozen=True)
class CacheEntry:
    """The JSON beside a cached case."""

    subset: str
    signature: str
    arrays: dict[str, dict[str, str | int]]  # name -> {"file", "bytes", "blake2b"}
    properties: CaseProperties


def case_signature(case: Case, plans: Plans, configuration: str) -> str:
    """Digest of the inputs (file names, sizes, modification times) and the plan settings used."""
    relevant = {"transpose": plans.transpose_forward, "normalization": [to_dict(n) for n in plans.normalization],
                "resampling": to_dict(plans.resampling), "spacing": plans.configuration(configuration).spacing_mm,
                "resample_z": plans.configuration(configuration).resample_z, "labels": plans.labels}
    files = [p for p in case.images + ((case.label,) if case.label else ())]
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps([relevant, stats], sort_keys=True, default=list).encode()).hexdigest()


def is_finished(folder: Path, case: Case, signature: str) -> bool:
    """True when the cached case exists, is complete and was made from the same inputs and plans."""
    json_path = folder / f"{case.case_id}.json"
    if not json_path.is_file():
        return False
    try:
        entry = load_cache_entry(json_path)
    except CacheError:
        return False
    return entry.signature == signature and all(
        (folder / a["file"]).is_file() and (folder / a["file"]).stat().st_size == a["bytes"] for a in entry.arrays.values())


def load_cache_entry(json_path: Path) -> CacheEntry:
    """Read a case's cache JSON strictly."""
    try:
        return from_dict(CacheEntry, read_json(json_path), "cache entry")
    except (OSError, ValueError, SchemaError) as err:
        raise CacheError(f"{json_path}: unreadable cache entry ({err}); re-run sss_preprocess") from err


def load_cached_array(folder: Path, entry: CacheEntry, name: str, verify: bool = True, mmap: bool = False) -> np.ndarray:
    """Load one cached array, checking its size and (optionally) its digest.

    Raises:
        CacheError: missing, truncated or altered file (the message names it).
    """
    record = entry.arrays[name]
    path = folder / str(record["file"])
    if not path.is_file() or path.stat().st_size != record["bytes"]:
        raise CacheError(f"{path}: missing or of the wrong size; re-run sss_preprocess")
    if verify and _digest(path) != record["blake2b"]:
        raise CacheError(f"{path}: content differs from the digest recorded at write time; re-run sss_preprocess")
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def _digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def preprocess_one(args: tuple[Case, Plans, str, Path, str]) -> str:
    """Read, check, preprocess and cache one case (runs in a worker process). Returns the case id."""
    case, plans, configuration, folder, signature = args
    images, label, geometry = read_case(case, set(plans.labels.values()))
    cached = preprocess_case(case.case_id, images, label, geometry, plans, configuration)
    arrays = {"data": cached.data, "foreground": cached.foreground}
    if cached.seg is not None:
        arrays["seg"] = cached.seg
    records = {}
    for name, array in arrays.items():
        path = folder / f"{case.case_id}{ARRAY_SUFFIXES[name]}"
        save_npy_atomic(np.ascontiguousarray(array), path)
        records[name] = {"file": path.name, "bytes": path.stat().st_size, "blake2b": _digest(path)}
    entry = CacheEntry(case.subset, signature, records, cached.properties)
    write_json_atomic(to_dict(entry), folder / f"{case.case_id}.json")
    return case.case_id


def preprocess_dataset(cases: list[Case], plans: Plans, configuration: str, folder: Path, num_processes: int = 2,
                       progress: bool = True) -> tuple[int, int]:
    """Cache every case that is not already finished.

    Returns:
        (number preprocessed now, number skipped as already finished).
    """
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    jobs, skipped = [], 0
    for case in cases:
        signature = case_signature(case, plans, configuration)
        if is_finished(folder, case, signature):
            skipped += 1
        else:
            jobs.append((case, plans, configuration, folder, signature))
    if skipped:
        logger.info("%d case(s) already preprocessed with the same inputs and plans: skipped", skipped)
    done = sum(1 for _ in map_unordered(preprocess_one, jobs, num_processes, desc=f"preprocess {configuration}", progress=progress))
    return done, skipped
