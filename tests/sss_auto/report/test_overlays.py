import math

import numpy as np

from sss_auto.io.nifti import Geometry, write_image
from sss_auto.report.overlays import best_slice, write_index, write_overlay

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _write(path, array):
    write_image(array, Geometry(array.shape, (3.0, 1.0, 1.0), (0.0, 0.0, 0.0), IDENTITY), path)


def test_best_slice_is_the_one_with_most_foreground():
    reference = np.zeros((5, 8, 8), np.int64)
    prediction = np.zeros_like(reference)
    reference[1, :2, :2] = 1
    prediction[3, :4, :4] = 2
    assert best_slice(reference, prediction) == 3
    assert best_slice(np.zeros((5, 4, 4)), np.zeros((5, 4, 4))) == 2


def test_overlay_png_and_index_html(tmp_path):
    image = np.random.default_rng(0).normal(size=(4, 32, 32)).astype(np.float32)
    label = np.zeros((4, 32, 32), np.uint8)
    label[2, 5:15, 5:15] = 1
    label[2, 20:25, 20:28] = 2
    _write(tmp_path / "img.nii.gz", image)
    _write(tmp_path / "ref.nii.gz", label)
    _write(tmp_path / "pred.nii.gz", label)
    write_overlay(tmp_path / "img.nii.gz", tmp_path / "ref.nii.gz", tmp_path / "pred.nii.gz", {1: "IPH", 2: "IVH"},
                  tmp_path / "case.png")
    assert (tmp_path / "case.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = {"n_cases": 1, "conventions": "x", "mean": {"dice": 1.0, "iou": 1.0, "hd95_mm": 0.0, "asd_mm": math.nan},
               "mean_per_class": {"1": {"dice": 1.0, "iou": 1.0, "hd95_mm": 0.0, "asd_mm": None}}}
    page = write_index(tmp_path, summary, {1: "IPH <b>"}, ["case.png"], "demo").read_text()
    assert "IPH &lt;b&gt;" in page and 'src="case.png"' in page and "n/a" in page
