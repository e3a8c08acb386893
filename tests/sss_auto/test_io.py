import numpy as np
import pytest
import SimpleITK as sitk

from sss_auto.errors import DatasetError
from sss_auto.io.atomic import read_json, write_json_atomic
from sss_auto.io.nifti import Geometry, count_nonfinite_voxels, read_header, read_image, read_image_4d, write_image
from sss_auto.io.serialization import SchemaError, from_dict, to_dict
from planners.plans import ResamplingPlan, TrainingPlan


def test_image_round_trip_keeps_geometry(tmp_path):
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    geometry = Geometry((4, 5, 6), (3.0, 0.7, 0.5), (10.5, -3.0, 7.25), direction)
    array = np.arange(120, dtype=np.float32).reshape(4, 5, 6)
    write_image(array, geometry, tmp_path / "a.nii.gz")
    back, read_geometry = read_image(tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(back, array)
    assert read_geometry.shape == geometry.shape
    np.testing.assert_allclose(read_geometry.spacing_mm, geometry.spacing_mm, rtol=1e-6)
    np.testing.assert_allclose(read_geometry.origin, geometry.origin, atol=1e-5)
    np.testing.assert_allclose(read_geometry.direction, geometry.direction, atol=1e-6)
    assert read_header(tmp_path / "a.nii.gz") == read_geometry


def test_write_leaves_no_temporary_file(tmp_path):
    write_image(np.zeros((2, 3, 4), np.uint8), Geometry((2, 3, 4), (1.0, 1.0, 1.0), (0.0,) * 3, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)), tmp_path / "x.nii.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]


def test_truncated_file_is_reported_with_its_name(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match="broken.nii.gz"):
        read_image(path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["bad.nii.gz", "bad.nii"])
def test_nan_and_inf_voxels_written_by_simpleitk_are_refused_naming_the_file(tmp_path, dtype, name):
    array = np.zeros((3, 4, 5), dtype)
    array[1, 2, 3], array[2, 0, 0] = np.nan, -np.inf
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / name))
    assert not np.isnan(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name)))).any(), \
        "SimpleITK hides the NaN (reads it as 0): the reason for reading the file's own bytes"
    assert count_nonfinite_voxels(tmp_path / name) == 2
    with pytest.raises(DatasetError, match=f"{name}: 2 NaN/Inf voxel"):
        read_image(tmp_path / name)


def test_finite_and_integer_files_pass_the_nonfinite_check(tmp_path):
    write_image(np.full((2, 3, 4), -1000.0, np.float32), Geometry((2, 3, 4), (1.0, 1.0, 1.0), (0.0,) * 3,
                (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)), tmp_path / "ok.nii.gz")
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(24, dtype=np.int16).reshape(2, 3, 4)), str(tmp_path / "int.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.float32)), str(tmp_path / "other.mha"))
    assert count_nonfinite_voxels(tmp_path / "ok.nii.gz") == 0
    assert count_nonfinite_voxels(tmp_path / "int.nii.gz") == 0
    assert count_nonfinite_voxels(tmp_path / "other.mha") == 0  # not NIfTI: SimpleITK's values are the file's
    assert read_image(tmp_path / "ok.nii.gz")[0].min() == -1000.0


def test_nan_in_a_4d_image_is_refused(tmp_path):
    frames = np.zeros((2, 3, 4, 5), np.float32)
    frames[1, 0, 0, 0] = np.nan
    sitk.WriteImage(sitk.JoinSeries([sitk.GetImageFromArray(f) for f in frames]), str(tmp_path / "cine.nii.gz"))
    with pytest.raises(DatasetError, match="cine.nii.gz: 1 NaN/Inf"):
        read_image_4d(tmp_path / "cine.nii.gz")


def test_4d_image_is_rejected(tmp_path):
    path = tmp_path / "four.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.float32), isVector=False), str(path))
    with pytest.raises(DatasetError, match="4D"):
        read_image(path)


def test_json_written_atomically_and_read_back(tmp_path):
    write_json_atomic({"a": [1, 2]}, tmp_path / "x.json")
    assert read_json(tmp_path / "x.json") == {"a": [1, 2]}
    assert len(list(tmp_path.iterdir())) == 1


def test_dataclass_round_trip_and_strict_keys():
    plan = TrainingPlan(num_epochs=7)
    assert from_dict(TrainingPlan, to_dict(plan)) == plan
    with pytest.raises(SchemaError, match="unknown key"):
        from_dict(ResamplingPlan, {**to_dict(ResamplingPlan()), "extra": 1})
    with pytest.raises(SchemaError, match="num_epochs"):
        from_dict(TrainingPlan, {"num_epochs": "many"})


def test_disk_full_is_a_clear_error_and_keeps_the_old_file(tmp_path):
    import errno

    from sss_auto.errors import SSSError
    from sss_auto.io.atomic import write_atomic

    target = tmp_path / "plans.json"
    target.write_text("old")

    def full_disk(handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SSSError, match="plans.json: no space left"):
        write_atomic(target, full_disk)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["plans.json"]
