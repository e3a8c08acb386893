"""Training records: the per-epoch history, the text log file and progress.png."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from sss_auto.io.atomic import atomic_path

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
HISTORY_FILE = "history.json"  # the per-epoch values behind progress.png (NaN as null), read by sss_report


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
    """progress.png: losses; validation Dice per class, fused and coarse; LR; mask ratios and PCSW acceptance;
    PCSW prompt quality and, in weak-to-strong epochs, what pseudo labels would find and teach away on
    the validation cases (method/reliability.py); pseudo labels per class against the labeled prior.

    The last panel shows, per foreground class, the share of weak-view pixels pseudo-labelled as the
    class (dashed: all; solid: confident) against the labeled voxel fraction (`priors`, dotted).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = history.get("epoch", [])
    marker = "." if len(epochs) < 30 else None
    fig, axes = plt.subplots(6, 1, figsize=(9, 20), sharex=True)
    for key in ("loss", "loss_l", "loss_u"):
        _plot(axes[0], history, key, key, "-", None, marker)
    axes[0].set_ylabel("loss")
    for index, (k, name) in enumerate(sorted(class_names.items())):
        _plot(axes[1], history, f"dice_{k}", f"{name} fused", "-", f"C{index}", marker)
        _plot(axes[1], history, f"dice_coarse_{k}", f"{name} coarse", "--", f"C{index}", None)
    _plot(axes[1], history, "dice_mean", "mean fused", "-", "k", marker)
    _plot(axes[1], history, "dice_coarse_mean", "mean coarse", "--", "k", None)
    axes[1].set_ylabel("validation Dice")
    _plot(axes[2], history, "lr", "lr", "-", None, marker)
    axes[2].set_ylabel("learning rate")
    for key in ["mask_ratio", "mask_ratio_fg"] + [f"mask_ratio_{k}" for k in class_names] + ["pair_ratio", "pcsw_acceptance",
                                                                                          "pcsw_fallback"]:
        _plot(axes[3], history, key, _series_name(key, class_names), "-", None, marker)
    axes[3].set_ylabel("share")
    for index, (k, name) in enumerate(sorted(class_names.items())):
        for key, style in (("prompt_recall", "-"), ("prompt_precision", "--"), ("prompt_box_iou", ":")):
            _plot(axes[4], history, f"{key}_{k}", f"{name} {key[len('prompt_'):]}", style, f"C{index}", "o")
        for key, style in (("found", "-"), ("away", "-.")):  # what pseudo labels would teach (method/reliability.py)
            _plot(axes[4], history, f"{key}_{k}", f"{name} pseudo labels {key}", style, f"C{index}", None)
    axes[4].set_ylabel("validation: PCSW prompts,\npseudo labels found / away")
    ax = axes[5]
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
            ax.legend(loc="best", fontsize=7, ncol=2)
    axes[-1].set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def _plot(ax, history: dict[str, list[float]], key: str, label: str, style: str, color: str | None,
          marker: str | None) -> None:
    if _has_values(history, key):
        ax.plot(history["epoch"], history[key], style, color=color, label=label, marker=marker)


def _has_values(history: dict[str, list[float]], key: str) -> bool:
    return key in history and any(not math.isnan(v) for v in history[key])


def _series_name(key: str, class_names: dict[int, str]) -> str:
    """"dice_2" -> "dice_2 (IVH)"; other keys as they are."""
    prefix, _, suffix = key.rpartition("_")
    if suffix.isdigit() and prefix in ("dice", "dice_coarse", "mask_ratio") and int(suffix) in class_names:
        return f"{key} ({class_names[int(suffix)]})"
    return key
