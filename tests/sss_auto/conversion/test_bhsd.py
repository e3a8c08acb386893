import json
import shutil
import zipfile

import numpy as np
import pytest

from sss_auto.conversion.bhsd import check_class_order, convert_bhsd, select_labeled
from sss_auto.dataset.integrity import check_dataset_structure
from sss_auto.dataset.raw import load_dataset
from sss_auto.errors import DatasetError
from sss_auto.io.nifti import read_header

def test_folders_with_official_split_convert_to_a_valid_dataset(tmp_path, bhsd_release):
    names = bhsd_release(tmp_path / "src")
    target = tmp_path / "raw" / "Dataset501_BHSD"
    counts = convert_bhsd(tmp_path / "src", target, progress=False)
    assert counts == {"labeled": 4, "test": 2, "unlabeled": 3}
    dataset = load_dataset(target)
    subsets = check_dataset_structure(dataset)
    assert len(subsets["labeled"]) == 4 and len(subsets["unlabeled"]) == 3
    assert dataset.labels == {"background": 0, "EDH": 1, "IPH": 2, "IVH": 3, "SAH": 4, "SDH": 5}
    assert sorted(p.name for p in (target / "imagesTs").iterdir()) == sorted(f"{n}_0000.nii.gz" for n in names[4:])
    assert (target / "labelsTs" / f"{names[4]}.nii.gz").is_file()
    assert read_header(target / "imagesTr" / f"{names[0]}_0000.nii.gz") == read_header(
        tmp_path / "src" / "label_192" / "images" / f"{names[0]}.nii.gz")


def test_zips_and_labeled_subsampling(tmp_path, bhsd_release):
    bhsd_release(tmp_path / "tree", official=False)
    zips = tmp_path / "zips"
    zips.mkdir()
    for part in ("label_192", "unlabel_2000"):
        with zipfile.ZipFile(zips / f"{part}.zip", "w") as handle:
            for path in (tmp_path / "tree" / part).rglob("*.nii.gz"):
                handle.write(path, path.relative_to(tmp_path / "tree"))
    target = tmp_path / "raw" / "Dataset502_BHSD"
    counts = convert_bhsd(zips, target, labeled="50%", seed=1, progress=False)
    assert counts == {"labeled": 3, "test": 0, "unlabeled": 3 + 3}
    assert len(list((target / "labelsTr").iterdir())) == 3
    assert json.loads((target / "dataset.json").read_text())["labeled_subset"] == "50%"
    assert not list(tmp_path.glob("raw/.bhsd_*")), "scratch folder removed"


def test_labeled_subset_is_seeded_and_checked():
    ids = [f"c{i}" for i in range(10)]
    assert select_labeled(ids, "30%", 0) == select_labeled(ids, "30%", 0)
    assert len(select_labeled(ids, "3", 0)[0]) == 3
    with pytest.raises(DatasetError, match="between 1 and 10"):
        select_labeled(ids, "0%", 0)
    with pytest.raises(DatasetError, match="count"):
        select_labeled(ids, "many", 0)


def test_bad_release_files_are_named(tmp_path, bhsd_release, write_volume_geometry):
    names = bhsd_release(tmp_path / "src", official=False)
    truths = tmp_path / "src" / "label_192" / "ground truths"
    bad = np.zeros((4, 16, 16), np.int16)
    bad[0, 0, 0] = 7
    write_volume_geometry(truths / f"{names[1]}.nii.gz", bad)
    with pytest.raises(DatasetError, match=f"{names[1]}.nii.gz: label values"):
        convert_bhsd(tmp_path / "src", tmp_path / "out1", progress=False)
    write_volume_geometry(truths / f"{names[1]}.nii.gz", np.zeros((4, 16, 16), np.int16), spacing=(2.0, 0.5, 0.5))
    with pytest.raises(DatasetError, match="geometry"):
        convert_bhsd(tmp_path / "src", tmp_path / "out2", progress=False)
    (truths / f"{names[1]}.nii.gz").unlink()
    with pytest.raises(DatasetError, match="no label of the same name"):
        convert_bhsd(tmp_path / "src", tmp_path / "out3", progress=False)
    shutil.rmtree(tmp_path / "src" / "label_192")
    with pytest.raises(DatasetError, match="ground truths"):
        convert_bhsd(tmp_path / "src", tmp_path / "out4", progress=False)


def test_a_zip_slip_member_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../outside.txt", "x")
    with pytest.raises(DatasetError, match="outside"):
        convert_bhsd(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "outside.txt").exists()


def test_class_order_sanity_check():
    presence_ok = np.array([0, 1, 50, 20, 10, 15])
    assert check_class_order(presence_ok) == []
    swapped = np.array([0, 50, 1, 20, 10, 15])
    assert len(check_class_order(swapped)) == 2
