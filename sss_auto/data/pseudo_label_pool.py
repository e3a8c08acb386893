"""Reading the pseudo-labelled pool of offline self-training (written by sss_auto/training/pseudo_labelling.py).

`<fold>/pseudo_labels/` holds per unlabeled case `<case>_label.npy` (int8 argmax), `<case>_conf.npy`
(float16 confidence) and `<case>_fg.npy` (foreground samples of the confident argmax, for
oversampling), and `pool.json`, written last: the per-class thresholds, the epoch the pool was made
in and its class shares. A folder without `pool.json` is incomplete and is made again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sss_auto.io.atomic import read_json

IGNORE = -1  # a pseudo-label pixel that no loss sees
POOL_FOLDER = "pseudo_labels"
INDEX = "pool.json"


def masked_labels(label: np.ndarray, confidence: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """int16, the shape of `label`: the pseudo label where its confidence reaches its class's threshold, else IGNORE."""
    label = np.asarray(label).astype(np.int16)
    passes = np.asarray(confidence, np.float32) >= np.asarray(thresholds, np.float32)[label]
    return np.where(passes, label, np.int16(IGNORE))


@dataclass(frozen=True)
class PseudoLabelPool:
    """Where a pool's pseudo labels lie and the per-class thresholds (K+1,) that decide which pixels count.

    Small and picklable: the loader's workers get it and memory-map the arrays they sample.
    """

    folder: Path
    thresholds: tuple[float, ...]
    epoch: int

    def path(self, case_id: str, kind: str) -> Path:
        """The case's "label", "conf" or "fg" array."""
        return self.folder / f"{case_id}_{kind}.npy"

    def volume_labels(self, case_id: str) -> np.ndarray:
        """int16 (z, y, x): the case's pseudo labels, IGNORE where below the threshold of their class."""
        return masked_labels(np.load(self.path(case_id, "label"), mmap_mode="r"),
                             np.load(self.path(case_id, "conf"), mmap_mode="r"), np.asarray(self.thresholds))

    def slice_labels(self, case_id: str, z: int) -> np.ndarray:
        """int16 (y, x): slice z of `volume_labels`."""
        return masked_labels(np.load(self.path(case_id, "label"), mmap_mode="r")[z],
                             np.load(self.path(case_id, "conf"), mmap_mode="r")[z], np.asarray(self.thresholds))

    def foreground(self, case_id: str) -> np.ndarray:
        """int32 (N, 4) rows (class, z, y, x) sampled from the case's confidently predicted foreground."""
        return np.load(self.path(case_id, "fg"))


def load_pool(folder: Path) -> PseudoLabelPool | None:
    """The complete pool in `folder` (its pool.json written), else None."""
    index = Path(folder) / INDEX
    if not index.is_file():
        return None
    data = read_json(index)
    return PseudoLabelPool(Path(folder), tuple(float(v) for v in data["thresholds"]), int(data["epoch"]))
