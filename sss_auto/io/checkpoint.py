"""Training checkpoints: written atomically, self-verifying, loaded with weights_only=True.

torch's zip format does not notice flipped bytes inside tensor data (checked: a corrupted file
loads silently), so every checkpoint carries a BLAKE2b digest of its own contents, recomputed on load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from sss_auto.errors import CheckpointError
from sss_auto.io.atomic import write_atomic

FORMAT_VERSION = 1
# A fold folder's checkpoints: the latest epoch (resume), the best validation epoch, the end of training.
LATEST, BEST, FINAL = "checkpoint_latest.pth", "checkpoint_best.pth", "checkpoint_final.pth"
DIGEST_KEY = "blake2b"


def state_digest(state: object) -> str:
    """Digest of a nested structure of dicts, lists, tensors and plain values (key order independent)."""
    digest = hashlib.blake2b(digest_size=16)
    _update(digest, state)
    return digest.hexdigest()


def _update(digest, value: object) -> None:
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(f"k:{key}".encode())
            _update(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"l:{len(value)}".encode())
        for item in value:
            _update(digest, item)
    elif isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"t:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    else:
        digest.update(f"v:{value!r}".encode())


def save_checkpoint(state: dict, path: Path) -> str:
    """Write `state` (tensors and plain values only) with its digest, atomically; returns the digest."""
    payload = dict(state, format_version=FORMAT_VERSION)
    payload[DIGEST_KEY] = digest = state_digest(payload)
    write_atomic(Path(path), lambda handle: torch.save(payload, handle))
    return digest


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load and verify a training checkpoint.

    Raises:
        CheckpointError: missing, unreadable (truncated, not a torch file, or containing anything
            but tensors and plain values), or altered since it was written.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated, foreign or unsafe files
        raise CheckpointError(f"{path}: cannot be loaded safely ({type(err).__name__}: {str(err)[:200]})") from err
    if not isinstance(state, dict) or DIGEST_KEY not in state:
        raise CheckpointError(f"{path}: not an sss-auto training checkpoint")
    recorded = state.pop(DIGEST_KEY)
    if state_digest(state) != recorded:
        raise CheckpointError(f"{path}: content differs from the digest recorded at write time (corrupted file)")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {state.get('format_version')}, expected {FORMAT_VERSION}")
    return state
