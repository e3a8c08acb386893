"""Prediction outputs in nnU-Net v2's layout, so that its ensembling and its evaluator read them.

nnU-Net's `--save_probabilities` writes, per case, `<case>.npz` (key `probabilities`: float32
(classes, z, y, x) in the order SimpleITK reads the image) and `<case>.pkl` (the properties its
SimpleITK reader returns); `nnUNetv2_ensemble` and `nnUNetv2_evaluate_folder` also read a
`dataset.json` and a `plans.json` (for the image reader/writer and the label manager) from the
prediction folder. sss-auto writes the same files with its own code; its `plans.json` holds only
what those tools read and says it is not an nnU-Net training plan.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from sss_auto.io.atomic import write_atomic, write_json_atomic
from sss_auto.io.nifti import Geometry, image_stem

PROBABILITIES_KEY = "probabilities"
PLANS_FILE = "plans.json"
DATASET_FILE = "dataset.json"


def nnunet_properties(geometry: Geometry) -> dict:
    """What nnU-Net's SimpleITK reader returns as an image's properties (the `.pkl` beside each `.npz`)."""
    return {"sitk_stuff": {"spacing": tuple(float(s) for s in reversed(geometry.spacing_mm)),
                           "origin": tuple(float(o) for o in geometry.origin),
                           "direction": tuple(float(d) for d in geometry.direction)},
            "spacing": [float(s) for s in geometry.spacing_mm]}


def write_case_probabilities(label_path: Path, probabilities: np.ndarray, geometry: Geometry) -> None:
    """`<case>.npz` and `<case>.pkl` beside `label_path` (`<case>.nii.gz`), each written atomically.

    Args:
        probabilities: (classes, z, y, x) in the raw image's array order, background first.
    """
    truncated = image_stem(label_path)
    write_atomic(label_path.with_name(f"{truncated}.npz"),
                 lambda handle: np.savez_compressed(handle, **{PROBABILITIES_KEY: probabilities.astype(np.float32)}))
    write_atomic(label_path.with_name(f"{truncated}.pkl"), lambda handle: pickle.dump(nnunet_properties(geometry), handle))


def write_folder_files(output: Path, dataset_json: Path, dataset_name: str) -> None:
    """The `dataset.json` (the run's, as trained) and the minimal `plans.json` nnU-Net's tools read."""
    write_json_atomic(json.loads(Path(dataset_json).read_text()), output / DATASET_FILE)
    write_json_atomic({"dataset_name": dataset_name, "plans_name": "sss-auto",
                       "image_reader_writer": "SimpleITKIO", "label_manager": "LabelManager",
                       "configurations": {},
                       "note": "written by sss_predict --output-format nnunet so that nnUNetv2_ensemble and "
                               "nnUNetv2_evaluate_folder can read this folder; not an nnU-Net training plan"},
                      output / PLANS_FILE)
