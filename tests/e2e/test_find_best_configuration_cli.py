"""sss_find_best_configuration on two trained folds, then sss_predict with and without the chosen postprocessing."""

import json
import shutil

import numpy as np
from skimage.measure import label as connected_components

from sss_auto.io.nifti import read_image
from tests.conftest import copy_trained, run_command


def test_best_configuration_chooses_postprocessing_and_predict_applies_it(two_runs_two_folds, roots, dataset_dir, tmp_path):
    env = copy_trained(two_runs_two_folds, roots)  # two runs on folds 0 and 1; this test looks at SSS-supervised only
    unfinished = run_command(["sss_find_best_configuration", "-d", "900", "--runs", "SSS-supervised", "--no-progress"], env)
    assert unfinished.returncode == 2 and "fold(s) 2, 3, 4 not finished" in unfinished.stdout + unfinished.stderr

    found = run_command(["sss_find_best_configuration", "-d", "900", "--runs", "SSS-supervised", "-f", "0", "1",
                         "--no-progress"], env)
    assert found.returncode == 0, found.stderr
    results = roots["results"] / "Dataset900_DemoBHSD"
    run = results / "SSS-supervised__2d"
    chosen = json.loads((run / "postprocessing.json").read_text())
    assert chosen["determined_on"] == {"run": "SSS-supervised__2d", "folds": ["0", "1"]} and chosen["n_cases"] == 2
    assert set(chosen["classes"]) == {"1", "2", "3"}
    assert all({"dice_unchanged", "candidates", "chosen", "rule"} <= set(c) for c in chosen["classes"].values())
    information = json.loads((results / "inference_information.json").read_text())
    assert information["best"] == "SSS-supervised__2d"
    instructions = (results / "inference_instructions.txt").read_text()
    assert "sss_predict -i INPUT_FOLDER -o OUTPUT_FOLDER -d Dataset900_DemoBHSD -c 2d --run SSS-supervised -f 0 1" in instructions
    assert "best: SSS-supervised__2d" in found.stdout

    for entry in chosen["classes"].values():  # make every class keep its largest component, to see it applied
        entry["rule"] = {"keep_largest": True, "min_component_ml": None}
    (run / "postprocessing.json").write_text(json.dumps(chosen))
    source = tmp_path / "input"
    shutil.copytree(dataset_dir / "imagesUnlabeled", source)
    predict = ["sss_predict", "-i", str(source), "-d", "900", "--run", "SSS-supervised", "--disable-tta", "--no-progress",
               "-np", "0"]
    plain = run_command(predict + ["-o", str(tmp_path / "plain"), "--disable-postprocessing"], env)
    post = run_command(predict + ["-o", str(tmp_path / "post")], env)
    assert plain.returncode == 0 and post.returncode == 0, plain.stderr + post.stderr
    assert "postprocessing from" in post.stderr and "keep the largest component" in post.stderr
    assert json.loads((tmp_path / "post" / "prediction_info.json").read_text())["postprocessing"]["1"] == \
        "keep the largest component"
    assert json.loads((tmp_path / "plain" / "prediction_info.json").read_text())["postprocessing"] == {}
    for path in sorted((tmp_path / "post").glob("*.nii.gz")):
        before, after = read_image(tmp_path / "plain" / path.name)[0], read_image(path)[0]
        for value in (1, 2, 3):
            assert connected_components(after == value, connectivity=3).max() <= 1
            assert not ((after == value) & (before != value)).any(), "a rule only removes voxels of its class"
        assert np.array_equal(after[after > 0], before[after > 0])
