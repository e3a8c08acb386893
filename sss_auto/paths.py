"""Root folders of the pipeline: SSS_raw, SSS_preprocessed, SSS_results (environment, or a default)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_BASE = Path.home() / "sss_data"
ROOT_VARIABLES = {"raw": "SSS_raw", "preprocessed": "SSS_preprocessed", "results": "SSS_results"}


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
