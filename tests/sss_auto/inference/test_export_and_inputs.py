import pickle

import numpy as np
import pytest

from planners.fingerprint import extract_fingerprint
from planners.planner import plan
from planners.target import PlanTarget
from preprocessing.case import preprocess_case
from sss_auto.dataset.integrity import read_case
from sss_auto.dataset.raw import load_dataset
from sss_auto.errors import DatasetError
from sss_auto.inference.export import export_prediction
from sss_auto.inference.inputs import find_input_cases
from sss_auto.inference.nnunet_layout import nnunet_properties
from sss_auto.io.nifti import read_header, read_image


def test_export_restores_geometry_of_a_rotated_case_and_round_trips_its_label(dataset_dir, tmp_path):
    dataset = load_dataset(dataset_dir)
    plans = plan(extract_fingerprint(dataset, 1, False), PlanTarget("cuda", 8.0), "test")
    case = [c for c in dataset.cases("test") if c.case_id == "test_000"][0]
    case = type(case)(case.case_id, case.images, dataset_dir / "labelsTs" / "test_000.nii.gz", "test")
    images, label, geometry = read_case(case, set(plans.labels.values()))
    assert geometry.direction != (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), "the demo's test_000 is rotated"
    cached = preprocess_case("test_000", images, label, geometry, plans, "2d")
    identity = np.eye(len(plans.labels), dtype=np.float32)[cached.seg].transpose(3, 0, 1, 2)
    out = tmp_path / "out" / "test_000.nii.gz"
    restored = export_prediction(identity, cached.properties, plans, out, save_probabilities=True)
    assert read_header(out) == read_header(case.images[0])
    written, _ = read_image(out)
    np.testing.assert_array_equal(written, restored)
    # tolerance: resampling to the plan's spacing and back may move thin borders
    fg = label > 0
    assert np.logical_and(restored > 0, fg).sum() * 2 / (fg.sum() + (restored > 0).sum()) >= 0.9
    assert (restored == label).mean() >= 0.98
    saved = np.load(tmp_path / "out" / "test_000_probabilities.npz")
    assert saved["probabilities"].shape == (len(plans.labels),) + label.shape

    nnunet = tmp_path / "nnunet" / "test_000.nii.gz"
    export_prediction(identity, cached.properties, plans, nnunet, save_probabilities=True, nnunet_layout=True)
    assert sorted(p.name for p in nnunet.parent.iterdir()) == ["test_000.nii.gz", "test_000.npz", "test_000.pkl"]
    np.testing.assert_array_equal(np.load(nnunet.with_name("test_000.npz"))["probabilities"].argmax(0), restored)
    with open(nnunet.with_name("test_000.pkl"), "rb") as handle:
        assert pickle.load(handle) == nnunet_properties(cached.properties.geometry)
    assert nnunet_properties(geometry)["sitk_stuff"]["spacing"] == tuple(reversed(geometry.spacing_mm))


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_inputs_group_channels_and_report_bad_cases_by_file(tmp_path):
    folder = _touch(tmp_path / "in", "a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "c_0000.nii.gz",
                    "c_0001.nii.gz", "c_0002.nii.gz", "plain.nii.gz", "notes.txt")
    cases, problems = find_input_cases(folder, 2)
    assert [c.case_id for c in cases] == ["a"]
    messages = {p.case_id: p.message for p in problems}
    assert "b_0001.nii.gz" in messages["b"] and "missing channel 1" in messages["b"]
    assert "c_0002.nii.gz" in messages["c"]
    assert "plain.nii.gz" in messages["plain"] and "needs 2 channels" in messages["plain"]


def test_single_channel_models_accept_plain_names_and_single_files(tmp_path):
    folder = _touch(tmp_path / "in", "x.nii.gz", "y_0000.nii.gz")
    cases, problems = find_input_cases(folder, 1)
    assert [c.case_id for c in cases] == ["x", "y"] and not problems
    cases, _ = find_input_cases(folder / "x.nii.gz", 1)
    assert [c.case_id for c in cases] == ["x"]


def test_empty_or_missing_input_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no .nii.gz image"):
        find_input_cases(_touch(tmp_path / "empty"), 1)
    with pytest.raises(DatasetError, match="not found"):
        find_input_cases(tmp_path / "nope", 1)


def test_model_choice_lists_what_exists_when_ambiguous_or_missing(tmp_path):
    from sss_auto.errors import CheckpointError
    from sss_auto.inference.models import choose_run, find_trained_runs

    for run in ("SSS__2d", "SSS-supervised__2d"):
        fold = tmp_path / "Dataset900_DemoBHSD" / run / "fold_0"
        fold.mkdir(parents=True)
        (fold.parent / "plans.json").write_text("{}")
        (fold / "checkpoint_final.pth").write_bytes(b"")
    runs = find_trained_runs(tmp_path)
    assert sorted(r.run for r in runs) == ["SSS", "SSS-supervised"]
    with pytest.raises(CheckpointError, match="several trained models match.*SSS-supervised__2d"):
        choose_run(runs, None, None, None, tmp_path)
    assert choose_run(runs, "900", "2d", "SSS", tmp_path).run == "SSS"
    with pytest.raises(CheckpointError, match="no trained model .* matches; trained models: .*SSS__2d"):
        choose_run(runs, "BHSD", None, None, tmp_path)
    assert find_trained_runs(tmp_path, "best") == []
    (tmp_path / "Dataset900_DemoBHSD" / "inference_information.json").write_text('{"best": "SSS-supervised__2d"}')
    assert choose_run(runs, None, None, None, tmp_path).run == "SSS-supervised", "sss_find_best_configuration's best"
    (tmp_path / "Dataset900_DemoBHSD" / "inference_information.json").write_text('{"best": "ensemble___a___b"}')
    with pytest.raises(CheckpointError, match="several trained models match"):
        choose_run(runs, None, None, None, tmp_path)
