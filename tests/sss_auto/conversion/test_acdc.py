import json
import os
import subprocess
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

from sss_auto.conversion.acdc import TEST, VAL, convert_acdc, parse_info, standard_split
from sss_auto.dataset.integrity import check_dataset_structure
from sss_auto.dataset.raw import load_dataset
from sss_auto.errors import DatasetError
from sss_auto.io.nifti import read_header

PATIENTS = ["patient099", "patient038", "patient050", "patient100", "patient002", "patient001", "patient003", "patient004"]


def _patient(root, name, es=4, frames=6, subset="training", labeled=True):
    folder = root / subset / name
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(f"ED: 1\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: {frames}\nWeight: 95.0\n")
    cine = np.random.default_rng(0).random((frames, 3, 10, 12)).astype(np.float32)
    image4d = sitk.GetImageFromArray(cine, isVector=False)
    image4d.SetSpacing((1.5, 1.5, 10.0, 1.0))
    sitk.WriteImage(image4d, str(folder / f"{name}_4d.nii.gz"))
    for frame in (1, es):
        image = sitk.GetImageFromArray(cine[frame - 1])
        image.SetSpacing((1.5, 1.5, 10.0))
        sitk.WriteImage(image, str(folder / f"{name}_frame{frame:02d}.nii.gz"))
        if not labeled:
            continue
        label = np.zeros((3, 10, 12), np.uint8)
        label[1, 2:5, 3:6], label[1, 5:7, 3:6], label[2, 2:4, 6:9] = 1, 2, 3
        gt = sitk.GetImageFromArray(label)
        gt.SetSpacing((1.5, 1.5, 10.0))
        sitk.WriteImage(gt, str(folder / f"{name}_frame{frame:02d}_gt.nii.gz"))


@pytest.fixture
def release(tmp_path):
    for name in PATIENTS:
        _patient(tmp_path / "database", name)
    return tmp_path / "database"


def test_standard_split_follows_the_published_lists():
    patients = [f"patient{i:03d}" for i in range(1, 101)]
    split = standard_split(patients, 3)
    assert split.labeled == ("patient038", "patient050", "patient099")
    assert len(split.unlabeled) == 67 and len(split.val) == 10 and len(split.test) == 20
    assert set(standard_split(patients, 7).labeled) == {"patient099", "patient038", "patient050", "patient100",
                                                        "patient058", "patient021", "patient049"}
    assert not set(split.labeled + split.unlabeled) & {f"patient{n}" for n in VAL + TEST}


def test_info_cfg_parsing_and_errors(tmp_path):
    (tmp_path / "Info.cfg").write_text("ED: 1\nES: 12\nGroup: DCM\n")
    assert parse_info(tmp_path / "Info.cfg")["ES"] == "12"
    (tmp_path / "Info.cfg").write_text("ED: 1\nGroup: DCM\n")
    with pytest.raises(DatasetError, match="no integer ES"):
        parse_info(tmp_path / "Info.cfg")


def test_release_converts_with_validation_fold_and_cine_frames(release, tmp_path):
    target = tmp_path / "raw" / "Dataset027_ACDC"
    counts = convert_acdc(release, target, labeled_cases=3, cine_unlabeled=True, progress=False)
    # labeled 099, 038, 050 + val 002 → 8 frames; test 001 → 2; unlabeled 100, 003, 004 → 6 + cine frames 3 and 5 of 6 patients
    assert counts == {"labeled": 8, "test": 2, "unlabeled": 6 + 2 * 6}
    subsets = check_dataset_structure(load_dataset(target))
    assert len(subsets["labeled"]) == 8 and len(subsets["unlabeled"]) == 18
    assert (target / "labelsTs" / "patient001_ES.nii.gz").is_file()
    cine = read_header(target / "imagesUnlabeled" / "patient100_cine03_0000.nii.gz")
    assert cine.shape == (3, 10, 12) and cine.spacing_mm == (10.0, 1.5, 1.5)
    splits = json.loads((target / "splits_final.json").read_text())
    assert splits[0]["val"] == ["patient002_ED", "patient002_ES"] and len(splits[0]["train"]) == 6


def test_zip_and_cli_and_bad_label(release, tmp_path, roots):
    archive = tmp_path / "acdc.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in release.rglob("*"):
            handle.write(path, path.relative_to(release.parent))
    result = subprocess.run(["sss_convert_acdc", str(archive), "--labeled-cases", "3", "--no-progress"], env=dict(os.environ),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (roots["raw"] / "Dataset027_ACDC" / "imagesTr" / "patient099_ED_0000.nii.gz").is_file()
    bad = sitk.GetImageFromArray(np.full((3, 10, 12), 7, np.uint8))
    bad.SetSpacing((1.5, 1.5, 10.0))
    sitk.WriteImage(bad, str(release / "training" / "patient099" / "patient099_frame04_gt.nii.gz"))
    with pytest.raises(DatasetError, match="patient099_frame04_gt.nii.gz: label values"):
        convert_acdc(release, tmp_path / "out", labeled_cases=3, progress=False)


def test_testing_folder_is_added_on_request(release, tmp_path):
    _patient(release, "patient101", subset="testing")
    _patient(release, "patient102", subset="testing", labeled=False)
    target = tmp_path / "raw" / "Dataset027_ACDC"
    counts = convert_acdc(release, target, labeled_cases=3, include_testing=True, progress=False)
    assert counts["test"] == 2 + 4
    assert (target / "labelsTs" / "patient101_ED.nii.gz").is_file() and not (target / "labelsTs" / "patient102_ED.nii.gz").exists()
    assert (target / "imagesTs" / "patient102_ES_0000.nii.gz").is_file()
