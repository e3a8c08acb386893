import numpy as np
import pytest
import SimpleITK as sitk

from sss_auto.errors import DatasetError
from sss_auto.io.atomic import read_json, write_json_atomic
from sss_auto.io.nifti import Geometry, read_header, read_image, write_image
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
