import json
import shutil

import numpy as np
import SimpleITK as sitk
import pytest

from sss_auto.dataset.demo import DemoSpec, demo_cases, make_demo_dataset
from sss_auto.dataset.integrity import check_case_arrays, check_dataset_structure, read_case
from sss_auto.dataset.raw import find_dataset, load_dataset
from sss_auto.errors import DatasetError
from sss_auto.io.nifti import read_image

from tests.conftest import write_volume


@pytest.mark.parametrize("spec", ["DemoBHSD", "Dataset900_DemoBHSD", "900"])
def test_dataset_found_by_name_folder_or_id(dataset_dir, roots, spec):
    assert find_dataset(spec, roots["raw"]).folder == dataset_dir


def test_missing_dataset_lists_what_exists(dataset_dir, roots):
    with pytest.raises(DatasetError, match="Dataset900_DemoBHSD"):
        find_dataset("ACDC", roots["raw"])


def test_ambiguous_dataset_is_an_error(dataset_dir, roots):
    shutil.copytree(dataset_dir, roots["raw"] / "Dataset900_Other")
    with pytest.raises(DatasetError, match="several"):
        find_dataset("900", roots["raw"])


def test_demo_is_deterministic_and_has_all_subsets(tmp_path):
    spec = DemoSpec(2, 1, 1, (6, 40, 40), seed=5)
    a, b = make_demo_dataset(tmp_path / "a", spec), make_demo_dataset(tmp_path / "b", spec)
    subsets = check_dataset_structure(load_dataset(a))
    assert [len(subsets[s]) for s in ("labeled", "unlabeled", "test")] == [2, 1, 1]
    image_a, geometry_a = read_image(a / "imagesTr" / "demo_000_0000.nii.gz")
    image_b, _ = read_image(b / "imagesTr" / "demo_000_0000.nii.gz")
    np.testing.assert_array_equal(image_a, image_b)
    assert geometry_a.spacing_mm[0] > 3 * geometry_a.spacing_mm[1]  # thick slices
    _, test_geometry = read_image(a / "imagesTs" / "test_000_0000.nii.gz")
    assert not np.allclose(test_geometry.direction, np.eye(3).ravel())
    assert image_a.min() < -900 and image_a.max() > 500  # air and skull in HU


def test_demo_cases_are_the_written_cases_and_keep_the_unlabeled_ground_truth(tmp_path):
    spec = DemoSpec(1, 2, 1, (6, 40, 40), seed=11, heterogeneity=0.5)
    folder = make_demo_dataset(tmp_path / "d", spec)
    cases = list(demo_cases(spec))
    assert [(c.image_folder, c.case_id) for c in cases] == [("imagesTr", "demo_000"), ("imagesUnlabeled", "unl_000"),
                                                            ("imagesUnlabeled", "unl_001"), ("imagesTs", "test_000")]
    for case in cases:
        image, _ = read_image(folder / case.image_folder / f"{case.case_id}_0000.nii.gz")
        np.testing.assert_allclose(image, case.image, atol=1e-3)
    label, _ = read_image(folder / "labelsTr" / "demo_000.nii.gz")
    np.testing.assert_array_equal(label, cases[0].label)
    assert not (folder / "labelsUnlabeled").exists() and all(c.label.any() for c in cases[1:3]), \
        "the unlabeled cases' labels exist for diagnostics, not in the dataset"


def test_demo_rare_class_is_small_rare_and_leaves_the_other_classes_unchanged(tmp_path):
    from scipy import ndimage

    plain = make_demo_dataset(tmp_path / "plain", DemoSpec(12, 0, 0, seed=1))
    rare = make_demo_dataset(tmp_path / "rare", DemoSpec(12, 0, 0, seed=1, rare_class_probability=0.4))
    assert json.loads((rare / "dataset.json").read_text())["labels"]["EDH"] == 4
    assert "EDH" not in json.loads((plain / "dataset.json").read_text())["labels"]
    with_rare, sizes = 0, []
    for path in sorted((rare / "labelsTr").glob("*.nii.gz")):
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(plain / "labelsTr" / path.name)))
        outside = label != 4
        np.testing.assert_array_equal(label[outside], reference[outside])  # other classes: same voxels
        components, count = ndimage.label(label == 4, np.ones((3, 3, 3)))
        if count:
            with_rare += 1
            assert count <= 2
            sizes += list(np.bincount(components.ravel())[1:])
    assert 0 < with_rare < 12  # some cases have it, some do not (p = 0.4)
    assert 30 <= min(sizes) and max(sizes) <= 600  # small lesions: tens to a few hundred voxels


def test_demo_heterogeneity_zero_is_the_plain_dataset_and_positive_varies_cases(tmp_path):
    from sss_auto.dataset.demo import CaseCondition

    spec = DemoSpec(3, 0, 0, (8, 48, 48), seed=2, rare_class_probability=0.5)
    plain = make_demo_dataset(tmp_path / "plain", spec)
    zero = make_demo_dataset(tmp_path / "zero", DemoSpec(3, 0, 0, (8, 48, 48), seed=2, rare_class_probability=0.5,
                                                         heterogeneity=0.0))
    mixed = make_demo_dataset(tmp_path / "mixed", DemoSpec(3, 0, 0, (8, 48, 48), seed=2, rare_class_probability=0.5,
                                                           heterogeneity=1.0))
    brain_means = []
    for name in ("demo_000", "demo_001", "demo_002"):
        a = read_image(plain / "imagesTr" / f"{name}_0000.nii.gz")[0]
        np.testing.assert_array_equal(a, read_image(zero / "imagesTr" / f"{name}_0000.nii.gz")[0])
        b = read_image(mixed / "imagesTr" / f"{name}_0000.nii.gz")[0]
        assert a.shape == b.shape and not np.allclose(a, b)
        label = read_image(mixed / "labelsTr" / f"{name}.nii.gz")[0]
        brain_means.append(float(np.median(b[(b > -100) & (b < 200) & (label == 0)])))
    assert max(brain_means) - min(brain_means) > 2  # each case its own calibration
    assert CaseCondition.draw(np.random.default_rng(0), 0.0) == CaseCondition()
    with pytest.raises(ValueError, match="heterogeneity"):
        make_demo_dataset(tmp_path / "bad", DemoSpec(1, 0, 0, (8, 48, 48), heterogeneity=1.5))


def _corrupt(dataset_dir, kind):
    """Apply one kind of damage; return the file name the error must mention."""
    tr, lab = dataset_dir / "imagesTr", dataset_dir / "labelsTr"
    meta = json.loads((dataset_dir / "dataset.json").read_text())
    if kind == "missing dataset.json":
        (dataset_dir / "dataset.json").unlink()
        return "dataset.json"
    if kind == "missing key":
        del meta["labels"]
        (dataset_dir / "dataset.json").write_text(json.dumps(meta))
        return "labels"
    if kind == "wrong channel suffix":
        (tr / "demo_000_0000.nii.gz").rename(tr / "demo_000.nii.gz")
        return "demo_000.nii.gz"
    if kind == "label missing":
        (lab / "demo_001.nii.gz").unlink()
        return "demo_001.nii.gz"
    if kind == "label without image":
        shutil.copy(lab / "demo_000.nii.gz", lab / "orphan.nii.gz")
        return "orphan.nii.gz"
    if kind == "shape mismatch":
        write_volume(lab / "demo_002.nii.gz", np.zeros((3, 4, 5), np.uint8))
        return "demo_002.nii.gz"
    if kind == "spacing mismatch":
        label, geometry = read_image(lab / "demo_002.nii.gz")
        write_volume(lab / "demo_002.nii.gz", label.astype(np.uint8), spacing=(9.0, 9.0, 9.0))
        return "demo_002.nii.gz"
    if kind == "undeclared label":
        label, geometry = read_image(lab / "demo_000.nii.gz")
        label[0, 0, 0] = 9
        write_volume(lab / "demo_000.nii.gz", label.astype(np.uint8), geometry.spacing_mm, geometry.origin, geometry.direction)
        return "demo_000.nii.gz"
    if kind == "truncated file":
        data = (tr / "demo_002_0000.nii.gz").read_bytes()
        (tr / "demo_002_0000.nii.gz").write_bytes(data[:200])
        return "demo_002_0000.nii.gz"
    if kind == "numTraining wrong":
        meta["numTraining"] = 10
        (dataset_dir / "dataset.json").write_text(json.dumps(meta))
        return "numTraining"
    if kind == "unsafe case id":
        (tr / "demo_000_0000.nii.gz").rename(tr / "de mo_0000.nii.gz")
        return "de mo"
    if kind == "4d image":
        image = sitk.GetImageFromArray(np.zeros((3, 8, 16, 16), np.float32), isVector=False)
        sitk.WriteImage(image, str(tr / "demo_001_0000.nii.gz"))
        return "demo_001_0000.nii.gz"
    if kind == "empty imagesTr":
        shutil.rmtree(tr)
        tr.mkdir()
        shutil.rmtree(lab)
        return "imagesTr"
    raise AssertionError(kind)


BAD_INPUTS = ["missing dataset.json", "missing key", "wrong channel suffix", "label missing", "label without image",
              "shape mismatch", "spacing mismatch", "undeclared label", "truncated file",
              "numTraining wrong", "unsafe case id", "4d image", "empty imagesTr"]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_integrity_errors_name_the_file(dataset_dir, kind):
    needle = _corrupt(dataset_dir, kind)
    with pytest.raises(DatasetError, match=needle.replace(".", r"\.")):
        dataset = load_dataset(dataset_dir)
        subsets = check_dataset_structure(dataset)
        for case in subsets["labeled"]:
            read_case(case, set(dataset.labels.values()))


def test_nan_and_inf_voxels_are_rejected_naming_the_file(dataset_dir):
    # Arrays from other readers: the NIfTI file's own NaN are refused by read_image (tests/sss_auto/test_io.py).
    dataset = load_dataset(dataset_dir)
    case = check_dataset_structure(dataset)["labeled"][0]
    images, label, _ = read_case(case, set(dataset.labels.values()))
    for bad in (np.nan, np.inf):
        broken = images.copy()
        broken[0, 1, 2, 3] = bad
        with pytest.raises(DatasetError, match="demo_000_0000.nii.gz: 1 NaN/Inf"):
            check_case_arrays(case, broken, label, set(dataset.labels.values()))


def test_make_demo_cli_writes_a_heterogeneous_dataset_and_refuses_a_bad_heterogeneity(tmp_path, capsys):
    from sss_auto.cli.make_demo import main

    assert main(["--labeled", "1", "--unlabeled", "0", "--test", "0", "--heterogeneity", "0.5", "-o", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "imagesTr" / "demo_000_0000.nii.gz").is_file()
    assert main(["--labeled", "1", "--heterogeneity", "2", "-o", str(tmp_path / "bad")]) != 0
    assert "--heterogeneity must be in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_datasets_are_found_in_nnunet_raw_only_when_sss_raw_is_unset(demo_template, tmp_path, monkeypatch):
    from sss_auto import paths

    nnunet_raw = tmp_path / "nnUNet_raw"
    shutil.copytree(demo_template, nnunet_raw / demo_template.name)
    monkeypatch.setattr(paths, "DEFAULT_BASE", tmp_path / "sss_data")
    monkeypatch.delenv("SSS_raw", raising=False)
    monkeypatch.setenv("nnUNet_raw", str(nnunet_raw))
    assert paths.raw_roots() == [tmp_path / "sss_data" / "SSS_raw", nnunet_raw]
    assert find_dataset("900", paths.raw_roots()).folder == nnunet_raw / demo_template.name
    own = tmp_path / "sss_data" / "SSS_raw"  # the same dataset in both: ambiguous, both named
    shutil.copytree(demo_template, own / demo_template.name)
    with pytest.raises(DatasetError, match="several.*SSS_raw.*nnUNet_raw"):
        find_dataset("DemoBHSD", paths.raw_roots())
    monkeypatch.setenv("SSS_raw", str(tmp_path / "elsewhere"))  # an explicit SSS_raw is the only place
    assert paths.raw_roots() == [tmp_path / "elsewhere"]


def test_nnunet_splits_are_offered_only_for_a_dataset_of_nnunet_raw(demo_template, tmp_path, monkeypatch):
    from sss_auto import paths

    nnunet_raw, nnunet_pre = tmp_path / "nnUNet_raw", tmp_path / "nnUNet_preprocessed"
    folder = nnunet_raw / demo_template.name
    folder.mkdir(parents=True)
    (nnunet_pre / demo_template.name).mkdir(parents=True)
    monkeypatch.setenv("nnUNet_raw", str(nnunet_raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(nnunet_pre))
    assert paths.nnunet_splits(folder) is None  # nnU-Net has not written its splits yet
    splits = nnunet_pre / demo_template.name / "splits_final.json"
    splits.write_text("[]")
    assert paths.nnunet_splits(folder) == splits
    assert paths.nnunet_splits(tmp_path / "SSS_raw" / demo_template.name) is None  # not nnU-Net's dataset
    monkeypatch.delenv("nnUNet_preprocessed")
    assert paths.nnunet_splits(folder) is None
