"""SAM-2 checkpoints: where they come from (Meta's official releases, MedSAM2), where they are kept, downloading them.

Nothing downloads unless the user runs `sss_download_sam2`. A download goes to a temporary file
beside the target, is checked against the server's Content-Length and for loadability
(`torch.load(weights_only=True)`, a dict with a "model" state dict), and only then renamed into place;
its SHA-256, computed while downloading, is written next to it (`<file>.sha256`). No checksum is
invented: Meta publishes none, so the recorded hash documents what was downloaded, nothing more.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from sss_auto.errors import CheckpointError
from sss_auto.io.atomic import atomic_path

logger = logging.getLogger(__name__)

BASE_URLS = {"2.1": "https://dl.fbaipublicfiles.com/segment_anything_2/092824/",
             "2.0": "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"}
FILE_PREFIX = {"2.1": "sam2.1_hiera_", "2.0": "sam2_hiera_"}
DOWNLOADABLE = ("tiny", "small", "base_plus", "large")
SOURCES = ("meta", "medsam2")
# MedSAM2 (bowang-lab/MedSAM2): SAM 2.1 Hiera-tiny fine-tuned on medical volumes, published on Hugging Face
MEDSAM2_BASE_URL = "https://huggingface.co/wanglab/MedSAM2/resolve/main/"
MEDSAM2_FILES = ("MedSAM2_latest.pt", "MedSAM2_2411.pt", "MedSAM2_CTLesion.pt", "MedSAM2_MRI_LiverLesion.pt",
                 "MedSAM2_US_Heart.pt")
MEDSAM2_VARIANT = "tiny"
HIERA_BLOCKS = {12: "tiny", 16: "small", 24: "base_plus", 48: "large"}  # trunk blocks of each variant's image encoder
DEFAULT_DIR = Path.home() / "sss_data" / "sam2_checkpoints"
CHUNK = 1 << 20


def checkpoint_dir() -> Path:
    """SSS_SAM2_DIR, or ~/sss_data/sam2_checkpoints."""
    value = os.environ.get("SSS_SAM2_DIR")
    return Path(value).expanduser() if value else DEFAULT_DIR


def checkpoint_name(variant: str, version: str = "2.1") -> str:
    """Official file name, e.g. sam2.1_hiera_tiny.pt."""
    if variant not in DOWNLOADABLE:
        raise CheckpointError(f"no official checkpoint for SAM-2 variant {variant!r}; choose one of {', '.join(DOWNLOADABLE)}")
    if version not in BASE_URLS:
        raise CheckpointError(f"unknown SAM-2 version {version!r}; choose 2.1 or 2.0")
    return f"{FILE_PREFIX[version]}{variant}.pt"


def checkpoint_url(variant: str, version: str = "2.1") -> str:
    return BASE_URLS[version] + checkpoint_name(variant, version)


def variant_of_checkpoint(path: Path) -> str | None:
    """The SAM-2 variant a published file name stands for (sam2.1_hiera_tiny.pt, MedSAM2_latest.pt -> "tiny"), else None."""
    if Path(path).name in MEDSAM2_FILES:
        return MEDSAM2_VARIANT
    for prefix in FILE_PREFIX.values():
        stem = Path(path).name.removesuffix(".pt")
        if stem.startswith(prefix) and stem[len(prefix):] in DOWNLOADABLE:
            return stem[len(prefix):]
    return None


def variant_of_state(state: dict) -> str | None:
    """The SAM-2 variant of a checkpoint's "model" state dict, from its image encoder's number of Hiera blocks."""
    blocks = {int(key.split(".")[3]) for key in state if key.startswith("image_encoder.trunk.blocks.")
              and key.split(".")[3].isdigit()}
    return HIERA_BLOCKS.get(max(blocks) + 1) if blocks else None


def source_file(variant: str, version: str = "2.1", source: str = "meta") -> tuple[str, str]:
    """(file name, URL) of a published checkpoint.

    Raises:
        CheckpointError: unknown source, or a variant the source does not publish.
    """
    if source == "medsam2":
        if variant != MEDSAM2_VARIANT:
            raise CheckpointError(f"MedSAM2 publishes only a Hiera-{MEDSAM2_VARIANT} model, not {variant!r}; "
                                  f"use --variant {MEDSAM2_VARIANT}")
        return MEDSAM2_FILES[0], MEDSAM2_BASE_URL + MEDSAM2_FILES[0]
    if source != "meta":
        raise CheckpointError(f"unknown checkpoint source {source!r}; choose one of {', '.join(SOURCES)}")
    return checkpoint_name(variant, version), checkpoint_url(variant, version)


def find_downloaded_checkpoints(folder: Path | None = None) -> dict[str, Path]:
    """Every variant with a checkpoint in the cache folder (what sss_download_sam2 wrote)."""
    found = {variant: find_checkpoint(variant, folder) for variant in DOWNLOADABLE}
    return {variant: path for variant, path in found.items() if path is not None}


def find_checkpoint(variant: str, folder: Path | None = None) -> Path | None:
    """A downloaded checkpoint of `variant` in the cache folder (2.1 preferred over 2.0), or None."""
    if variant not in DOWNLOADABLE:
        return None
    folder = folder or checkpoint_dir()
    names = [checkpoint_name(variant, version) for version in ("2.1", "2.0")]
    if variant == MEDSAM2_VARIANT:
        names.insert(0, MEDSAM2_FILES[0])  # medical weights first: a user who downloaded them wants them
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def download_checkpoint(variant: str, version: str = "2.1", folder: Path | None = None, progress: bool = True,
                        opener: Callable = urllib.request.urlopen, timeout_s: float = 60.0, source: str = "meta") -> Path:
    """Download one published checkpoint (`source`: Meta's official, or MedSAM2's) into `folder` and return its path.

    Raises:
        CheckpointError: no connection (the message gives the manual steps), an incomplete
            download, or a file that does not load as a SAM-2 checkpoint. Nothing is left behind.
    """
    folder = folder or checkpoint_dir()
    name, url = source_file(variant, version, source)
    target = folder / name
    if target.is_file():
        logger.info("%s is already downloaded", target)
        return target
    manual = (f"download {url} yourself (browser, or wget/curl on a machine with internet), put it in {folder}, "
              f"or pass the file to sss_train with --sam2-checkpoint")
    digest = hashlib.sha256()
    try:
        with opener(url, timeout=timeout_s) as response, atomic_path(target) as tmp:
            expected = response.headers.get("Content-Length")
            received = 0
            with open(tmp, "wb") as handle, tqdm(total=int(expected) if expected else None, unit="B", unit_scale=True,
                                                 desc=name, disable=None if progress else True) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    handle.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
            if expected is not None and received != int(expected):
                raise CheckpointError(f"{url}: download incomplete ({received} of {expected} bytes); run the command again")
            if expected is None:
                logger.warning("%s: the server sent no length; the size could not be checked", url)
            try:
                detected = variant_of_state(read_official_checkpoint(tmp, variant))
            except CheckpointError as err:
                raise CheckpointError(f"{url}: the downloaded file does not load safely ({err})") from err
            if detected not in (None, variant):
                raise CheckpointError(f"{url}: holds a SAM-2 {detected} image encoder, not {variant}; nothing kept")
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
        raise CheckpointError(f"cannot download {url} ({err}); {manual}") from err
    (folder / f"{name}.sha256").write_text(f"{digest.hexdigest()}  {name}\n")
    logger.info("downloaded %s (%d bytes, sha256 %s)", target, target.stat().st_size, digest.hexdigest())
    return target


def read_official_checkpoint(path: Path, variant: str) -> dict:
    """The "model" state dict of an official SAM-2 checkpoint file, loaded with weights_only=True.

    Raises:
        CheckpointError: missing file, not loadable safely, or no "model" state dict (naming the file).
    """
    import torch

    if not path.is_file():
        raise CheckpointError(f"{path}: SAM-2 checkpoint not found; run sss_download_sam2 --variant {variant}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or non-torch files
        raise CheckpointError(f"{path}: cannot be loaded as a SAM-2 checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"{path}: not an official SAM-2 checkpoint (expected a dict with a 'model' state dict)")
    return state["model"]
