"""Overlay PNGs (image | reference | prediction, per-class colours) and an index.html with the metrics table."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from sss_auto.io.atomic import atomic_path, write_atomic
from sss_auto.io.nifti import read_image

CLASS_COLOURS = ((0.90, 0.10, 0.10), (0.10, 0.60, 0.95), (0.95, 0.80, 0.10), (0.20, 0.85, 0.30), (0.80, 0.30, 0.90))


def best_slice(reference: np.ndarray, prediction: np.ndarray) -> int:
    """The slice with the most foreground in reference or prediction (middle slice when both are empty)."""
    area = (reference > 0).reshape(reference.shape[0], -1).sum(1) + (prediction > 0).reshape(prediction.shape[0], -1).sum(1)
    return int(area.argmax()) if area.any() else reference.shape[0] // 2


def _blend(gray: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    for value in np.unique(labels):
        if value <= 0:
            continue
        colour = np.array(CLASS_COLOURS[(int(value) - 1) % len(CLASS_COLOURS)])
        mask = labels == value
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
    return rgb


def write_overlay(image_path: Path, reference_path: Path, prediction_path: Path, class_names: dict[int, str],
                  target: Path) -> None:
    """One PNG: the image, the reference and the prediction on the slice with the most foreground."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    image, _ = read_image(image_path)
    reference = np.rint(read_image(reference_path)[0]).astype(np.int64)
    prediction = np.rint(read_image(prediction_path)[0]).astype(np.int64)
    z = best_slice(reference, prediction)
    low, high = np.percentile(image[z], [1, 99])
    gray = np.clip((image[z] - low) / max(high - low, 1e-6), 0, 1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.8))
    for ax, (title, panel) in zip(axes, [("image", np.repeat(gray[..., None], 3, -1)), ("reference", _blend(gray, reference[z])),
                                         ("prediction", _blend(gray, prediction[z]))]):
        ax.imshow(panel)
        ax.set_title(f"{title} (slice {z})")
        ax.axis("off")
    handles = [Patch(color=CLASS_COLOURS[(k - 1) % len(CLASS_COLOURS)], label=name) for k, name in sorted(class_names.items()) if k > 0]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles))
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


# After loading, <body data-images="loaded|broken"> says whether every picture loaded (a broken one
# also shows its file name in red), so a person and a headless browser see the same thing.
_IMAGE_CHECK = ("<script>window.addEventListener('load',function(){var ok=true;"
                "Array.prototype.forEach.call(document.images,function(i){if(!(i.complete&&i.naturalWidth>0)){ok=false;"
                "i.insertAdjacentHTML('afterend','<p class=\"broken\">missing picture: '+i.getAttribute('src')+'</p>');}});"
                "document.body.dataset.images=ok?'loaded':'broken';});</script>")


def metric_cell(value) -> str:
    """A table cell's text: three decimals, n/a for a missing or NaN value."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def metrics_table(summary: dict, class_names: dict[int, str], metrics: tuple[str, ...] = ("dice", "iou", "hd95_mm", "asd_mm"),
                  table_id: str = "metrics") -> str:
    """An HTML table of the mean metrics per class and overall; cells carry data-class/data-metric for tests."""
    rows = "".join(f"<tr><td>{html.escape(class_names.get(int(k), k))}</td>"
                   + "".join(f'<td data-class="{k}" data-metric="{m}">{metric_cell(v.get(m))}</td>' for m in metrics)
                   + "</tr>" for k, v in summary["mean_per_class"].items())
    rows += "<tr><th>mean</th>" + "".join(f'<th data-class="mean" data-metric="{m}">{metric_cell(summary["mean"].get(m))}</th>'
                                          for m in metrics) + "</tr>"
    return (f'<table id="{table_id}"><tr><th>class</th>' + "".join(f"<th>{m}</th>" for m in metrics) + f"</tr>{rows}</table>")


def write_index(folder: Path, summary: dict, class_names: dict[int, str], images: list[str], title: str,
                extra_html: str = "", cases_label: str = "test") -> Path:
    """index.html in `folder`: the mean metrics per class, `extra_html`, and the pictures (paths relative to `folder`)."""
    pictures = "".join(f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}"><figcaption>{html.escape(name)}'
                       f"</figcaption></figure>" for name in images)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px "
            "solid #ccc;padding:4px 10px;text-align:right}img{max-width:100%}.broken{color:#c00}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{summary['n_cases']} {html.escape(cases_label)} case(s); "
            f"{html.escape(summary['conventions'])}</p>{metrics_table(summary, class_names)}{extra_html}"
            f"{pictures}{_IMAGE_CHECK}</body></html>")
    target = folder / "index.html"
    write_atomic(target, lambda handle: handle.write(page.encode("utf-8")))
    return target
