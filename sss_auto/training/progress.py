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


def plot_progress(history: dict[str, list[float]], class_names: dict[int, str], path: Path,
                  priors: dict | None = None) -> None:
    """progress.png: losses; validation Dice per class; LR; mask ratios and PCSW acceptance; pseudo labels per class.

    The last panel shows, per foreground class, the share of weak-view pixels pseudo-labelled as the
    class (dashed: all; solid: confident) against the labeled voxel fraction (`priors`, dotted).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = history.get("epoch", [])
    fig, axes = plt.subplots(5, 1, figsize=(9, 17), sharex=True)
    panels = [
        (axes[0], ["loss", "loss_l", "loss_u"], "loss"),
        (axes[1], [f"dice_{k}" for k in class_names] + ["dice_mean"], "validation Dice"),
        (axes[2], ["lr"], "learning rate"),
        (axes[3], ["mask_ratio", "mask_ratio_fg"] + [f"mask_ratio_{k}" for k in class_names]
         + ["pcsw_acceptance", "pcsw_fallback"], "share"),
    ]
    for ax, keys, label in panels:
        for key in keys:
            if _has_values(history, key):
                ax.plot(epochs, history[key], label=_series_name(key, class_names), marker="." if len(epochs) < 30 else None)
        ax.set_ylabel(label)
    ax = axes[4]
    for index, (k, name) in enumerate(sorted(class_names.items())):
        color = f"C{index}"
        for key, style in ((f"plc_{k}", "-"), (f"pl_{k}", "--")):
            if _has_values(history, key):
                values = [v if v > 0 else float("nan") for v in history[key]]
                ax.plot(epochs, values, style, color=color, label=f"{name} {'confident' if key.startswith('plc') else 'all'}")
        prior = (priors or {}).get(k)
        if prior is not None and prior.voxel_fraction > 0 and ax.lines:
            ax.axhline(prior.voxel_fraction, color=color, linestyle=":", label=f"{name} labeled")
    if ax.lines:
        ax.set_yscale("log")
    ax.set_ylabel("pseudo-label share of pixels")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize=7)
    axes[-1].set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def _has_values(history: dict[str, list[float]], key: str) -> bool:
    return key in history and any(not math.isnan(v) for v in history[key])


def _series_name(key: str, class_names: dict[int, str]) -> str:
    """"dice_2" -> "dice_2 (IVH)"; other keys as they are."""
    prefix, _, suffix = key.rpartition("_")
    if suffix.isdigit() and prefix in ("dice", "dice_coarse", "mask_ratio") and int(suffix) in class_names:
        return f"{key} ({class_names[int(suffix)]})"
    return key
