"""Root folders of the pipeline: SSS_raw, SSS_preprocessed, SSS_results (environment, or a default)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_BASE = Path.home() / "sss_data"
ROOT_VARIABLES = {"raw": "SSS_raw", "preprocessed": "SSS_preprocessed", "results": "SSS_results"}
NNUNET_RAW, NNUNET_PREPROCESSED = "nnUNet_raw", "nnUNet_preprocessed"  # read, never written


def root(kind: str) -> Path:
    """Return the root folder of `kind` ("raw", "preprocessed" or "results").

    The environment variable (SSS_raw, SSS_preprocessed, SSS_results) wins; when unset the
    default is ~/sss_data/<variable name>, and a log line says which folder is used.
    """
    variable = ROOT_VARIABLES[kind]
    value = os.environ.get(variable)
    if value:
        return Path(value).expanduser()
    folder = DEFAULT_BASE / variable
    logger.info("%s is not set; using the default %s", variable, folder)
    return folder


def raw_roots() -> list[Path]:
    """Where datasets are looked for: SSS_raw; when it is unset and nnUNet_raw is set, also nnUNet_raw.

    nnU-Net's folder is only read: everything sss-auto writes goes to SSS_preprocessed and
    SSS_results (and sss_make_demo / the converters write into SSS_raw), never next to nnU-Net's files.
    """
    own = root("raw")
    nnunet = os.environ.get(NNUNET_RAW)
    if os.environ.get(ROOT_VARIABLES["raw"]) or not nnunet:
        return [own]
    logger.info("SSS_raw is not set: datasets are also looked for in nnUNet_raw=%s (read only)", nnunet)
    return [own, Path(nnunet).expanduser()]


def nnunet_splits(dataset_folder: Path) -> Path | None:
    """nnU-Net's splits_final.json of a dataset found in nnUNet_raw (nnUNet_preprocessed/<folder>/), if it exists."""
    raw, preprocessed = os.environ.get(NNUNET_RAW), os.environ.get(NNUNET_PREPROCESSED)
    if not raw or not preprocessed or Path(dataset_folder).parent.resolve() != Path(raw).expanduser().resolve():
        return None
    splits = Path(preprocessed).expanduser() / Path(dataset_folder).name / "splits_final.json"
    return splits if splits.is_file() else None
