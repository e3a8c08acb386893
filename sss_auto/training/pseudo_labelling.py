"""Labelling the unlabeled pool once for offline self-training (method/self_training.py; read by data/pseudo_label_pool.py)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from preprocessing.case import sample_foreground
from sss_auto.data.cache import CaseCache
from sss_auto.data.pseudo_label_pool import INDEX, PseudoLabelPool
from sss_auto.inference.settings import InferenceSettings
from sss_auto.inference.two_pass import predict_volume
from sss_auto.io.atomic import save_npy_atomic, write_json_atomic
from sss_auto.method.self_training import confidence_sums, label_volume, thresholds_from_means
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.pcsw import ClassConstraint


def label_pool(model: SSSNet, cache: CaseCache, case_ids: list[str], settings: InferenceSettings,
               constraints: dict[int, ClassConstraint], folder: Path, tau: float, mode: str, epoch: int,
               unready: np.ndarray | None = None, shares: np.ndarray | None = None,
               show_progress: bool = True) -> tuple[PseudoLabelPool, dict[str, float]]:
    """Predict every unlabeled case with the full inference (`settings`) and write the pool; returns it and its metrics.

    Metrics: `pool_s` (seconds), per class `plc_k` (share of the pool's pixels confidently labelled
    k) and, per foreground class, `pool_cases_k` (cases holding a confident k). The model is left in
    train mode.
    """
    start = time.monotonic()
    (folder / INDEX).unlink(missing_ok=True)  # the pool is incomplete until its index is written again
    num_classes = model.config.num_classes
    counts, sums = np.zeros(num_classes), np.zeros(num_classes)
    model.eval()
    try:
        for case_id in tqdm(case_ids, desc="pseudo-label the unlabeled pool", unit="case",
                            disable=None if show_progress else True):
            volume = cache.load(case_id)
            prediction = predict_volume([model], np.asarray(volume.data), volume.properties.spacing_after_resampling_mm,
                                        settings, constraints)
            label, confidence = label_volume(prediction.probabilities, unready, shares)
            save_npy_atomic(label, folder / f"{case_id}_label.npy")
            save_npy_atomic(confidence, folder / f"{case_id}_conf.npy")
            case_counts, case_sums = confidence_sums(label, confidence, num_classes)
            counts += case_counts
            sums += case_sums
    finally:
        model.train()
    pool = PseudoLabelPool(folder, tuple(float(v) for v in thresholds_from_means(counts, sums, tau, mode)), epoch)
    pixels, confident, cases = 0, np.zeros(num_classes), np.zeros(num_classes)
    for case_id in case_ids:
        labels = pool.volume_labels(case_id)
        present = np.bincount(labels[labels >= 0].astype(np.int64), minlength=num_classes)
        pixels += labels.size
        confident += present
        cases += present > 0
        save_npy_atomic(sample_foreground(labels, np.random.default_rng(epoch)), folder / f"{case_id}_fg.npy")
    metrics = {**{f"plc_{k}": float(confident[k] / max(pixels, 1)) for k in range(num_classes)},
               **{f"pool_cases_{k}": float(cases[k]) for k in range(1, num_classes)},
               "pool_s": time.monotonic() - start}
    write_json_atomic({"epoch": epoch, "thresholds": list(pool.thresholds), "cases": len(case_ids), "metrics": metrics},
                      folder / INDEX)
    return pool, metrics
