"""The largest batch whose training step fits a memory budget, from step estimates remembered on disk.

Measuring a step's memory builds the model on the meta device and runs the trainer's step
(planners/memory.py, which imports torch and SAM-2: seconds). An estimate depends only on the
model configuration, the batch, whether the encoder trains, mixed precision, and the code that
builds and steps the model, so estimates are kept in a small JSON file (`$SSS_CACHE_DIR`, else
`~/.cache/sss_auto`) under a key made of all of these — the code as a digest of its source files and
of the installed torch and sam2 versions. A planning run whose estimates are known imports neither
torch nor SAM-2; any change to the network or the step is measured again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from sss_auto.io.atomic import read_json, write_json_atomic
from sss_auto.networks.config import ModelConfig

logger = logging.getLogger(__name__)

GIB = 1024**3
CACHE_VARIABLE = "SSS_CACHE_DIR"
CACHE_FORMAT = 1
_ROOT = Path(__file__).resolve().parent.parent
# what an estimate is computed by: the network, the SSS step and its batch types, and the estimator itself
ESTIMATE_CODE = ("sss_auto/networks", "sss_auto/method", "sss_auto/data/batch.py", "sss_auto/data/strong.py",
                 "planners/memory.py")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed by one step; `total_bytes` is what must fit on the device."""

    persistent_bytes: int
    activation_bytes: int
    workspace_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.persistent_bytes + self.activation_bytes + self.workspace_bytes

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB


def estimate_cache_file() -> Path:
    """Where estimates are remembered: $SSS_CACHE_DIR, else $XDG_CACHE_HOME/sss_auto, else ~/.cache/sss_auto."""
    folder = os.environ.get(CACHE_VARIABLE) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sss_auto"
    return Path(folder) / "memory_estimates.json"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """Digest of the source files an estimate depends on and of the torch and sam2 versions installed."""
    digest = hashlib.blake2b(digest_size=16)
    for package in ("torch", "sam2"):
        try:
            digest.update(f"{package}={metadata.version(package)};".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{package}=none;".encode())
    for entry in ESTIMATE_CODE:
        path = _ROOT / entry
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(source.relative_to(_ROOT)).encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()


def _key(config: ModelConfig, batch: int, encoder_trainable: bool, mixed_precision: bool, clip_length: int) -> str:
    return json.dumps({"model": asdict(config), "batch": batch, "encoder_trainable": encoder_trainable,
                       "mixed_precision": mixed_precision, "clip_length": clip_length, "code": code_digest()},
                      sort_keys=True)


def _read_cache(path: Path) -> dict[str, list[int]]:
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
        if data.get("format") != CACHE_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {CACHE_FORMAT}")
        return {str(k): [int(v) for v in values] for k, values in data["estimates"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        logger.warning("%s: unreadable memory-estimate cache (%s); the estimates are measured again and it is rewritten",
                       path, err)
        return {}


def step_estimates(config: ModelConfig, batches: tuple[int, ...], encoder_trainable: bool = True,
                   mixed_precision: bool = False, clip_length: int = 0) -> list[MemoryEstimate]:
    """Memory of one SSS step for each batch size (labeled = unlabeled; clips of `clip_length` slices when > 0):
    remembered, else measured and remembered."""
    path = estimate_cache_file()
    cache = _read_cache(path)
    keys = [_key(config, b, encoder_trainable, mixed_precision, clip_length) for b in batches]
    missing = {b: key for b, key in zip(batches, keys) if key not in cache}
    if missing:
        from planners.memory import measure_step_estimates  # torch and SAM-2: only when something is new

        measured = measure_step_estimates(config, tuple(missing), encoder_trainable, mixed_precision, clip_length)
        for key, estimate in zip(missing.values(), measured):
            cache[key] = [estimate.persistent_bytes, estimate.activation_bytes, estimate.workspace_bytes]
        try:  # re-read before writing: keep what another planning process remembered meanwhile
            write_json_atomic({"format": CACHE_FORMAT, "estimates": {**_read_cache(path), **cache}}, path)
        except OSError as err:  # a read-only home still plans; it measures again next time
            logger.warning("%s: could not remember the memory estimates (%s)", path, err)
    return [MemoryEstimate(*cache[key]) for key in keys]


def fit_batch(model_config: ModelConfig, budget_bytes: int, max_batch: int, encoder_trainable: bool = True,
              mixed_precision: bool = False, clip_length: int = 0) -> tuple[int, MemoryEstimate]:
    """Largest batch b (labeled = unlabeled = b, 1:1; clips of `clip_length` slices when > 0) whose step fits
    `budget_bytes`, and its estimate.

    Activations grow linearly with the batch, so batches 1 and 2 are estimated and extrapolated; when at
    most one fits anyway (`max_batch` 1, a CPU's one clip per step), batch 1 alone is estimated.
    Returns (0, estimate at batch 1) when even batch 1 does not fit.
    """
    if max_batch == 1:
        one, = step_estimates(model_config, (1,), encoder_trainable, mixed_precision, clip_length)
        return (1, one) if budget_bytes > one.total_bytes else (0, one)
    one, two = step_estimates(model_config, (1, 2), encoder_trainable, mixed_precision, clip_length)
    per_sample = max(two.activation_bytes - one.activation_bytes, 1)
    fixed = one.total_bytes - per_sample
    batch = int(min(max_batch, (budget_bytes - fixed) // per_sample)) if budget_bytes > one.total_bytes else 0

    def extrapolated(b: int) -> MemoryEstimate:
        return MemoryEstimate(one.persistent_bytes, one.activation_bytes + (b - 1) * per_sample,
                              one.workspace_bytes if b == 1 else max(one.workspace_bytes, two.workspace_bytes))

    while batch > 0 and extrapolated(batch).total_bytes > budget_bytes:  # the larger workspace of batch 2 may not fit
        batch -= 1
    return (batch, extrapolated(batch)) if batch > 0 else (0, one)
