"""Training records: the per-epoch history, the text log file and progress.png."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from sss_auto.io.atomic import atomic_path

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def add_log_file(path: Path) -> logging.Handler:
    """Append the package's log records to `path` (the caller removes the handler when done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name in ("sss_auto", "planners", "preprocessing"):
        logging.getLogger(name).addHandler(handler)
    return handler


def remove_log_file(handler: logging.Handler) -> None:
    for name in ("sss_auto", "planners", "preprocessing"):
        logging.getLogger(name).removeHandler(handler)
    handler.close()


def append(history: dict[str, list[float]], epoch_values: dict[str, float]) -> None:
    """Add one epoch's values; keys missing this epoch get NaN so every series stays aligned."""
    length = len(history.get("epoch", []))
    for key in set(history) | set(epoch_values):
        series = history.setdefault(key, [math.nan] * length)
        series.append(float(epoch_values.get(key, math.nan)))


def plot_progress(history: dict[str, list[float]], class_names: dict[int, str], path: Path) -> None:
    """progress.png: losses; validation Dice per class; LR; mask ratio and PCSW acceptance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = history.get("epoch", [])
    fig, axes = plt.subplots(4, 1, figsize=(9, 14), sharex=True)
    panels = [
        (axes[0], ["loss", "loss_l", "loss_u"], "loss"),
        (axes[1], [f"dice_{k}" for k in class_names] + ["dice_mean"], "validation Dice"),
        (axes[2], ["lr"], "learning rate"),
        (axes[3], ["mask_ratio", "pcsw_acceptance", "pcsw_fallback"], "share"),
    ]
    for ax, keys, label in panels:
        for key in keys:
            if key in history and any(not math.isnan(v) for v in history[key]):
                name = f"{key} ({class_names[int(key[5:])]})" if key.startswith("dice_") and key[5:].isdigit() else key
                ax.plot(epochs, history[key], label=name, marker="." if len(epochs) < 30 else None)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
