"""Ensembles end to end: two runs validated with --save-probabilities, sss_find_best_configuration ranks their
ensemble beside them, and sss_ensemble combines two sss_predict folders."""

import json
import shutil

from sss_auto.io.nifti import read_header
from sss_auto.report.overlays import metric_cell
from tests.conftest import CHROMIUM, TWO_RUNS, copy_trained, headless_dom, run_command


def test_find_best_ranks_the_ensemble_and_sss_ensemble_follows_the_instructions(two_runs_two_folds, roots, dataset_dir,
                                                                                tmp_path):
    env = copy_trained(two_runs_two_folds, roots)
    results = roots["results"] / "Dataset900_DemoBHSD"
    assert list((results / "SSS-supervised__2d" / "fold_0" / "validation").glob("*_probabilities.npz"))
    _check_reports(env, results)

    found = run_command(["sss_find_best_configuration", "-d", "900", "-f", "0", "1", "--no-progress"], env)
    assert found.returncode == 0, found.stderr
    name = "ensemble___SSS-supervised-noPCSW-noRefine__2d___SSS-supervised__2d"  # members in folder-name order
    ensemble = results / "ensembles" / name
    information = json.loads((results / "inference_information.json").read_text())
    entries = {e["run"]: e for e in information["runs"]}
    assert set(entries) == {"SSS-supervised__2d", "SSS-supervised-noPCSW-noRefine__2d", name}
    assert entries[name]["kind"] == "ensemble" and entries[name]["n_cases"] == 2
    assert json.loads((ensemble / "postprocessing.json").read_text())["determined_on"]["ensemble"] == \
        ["SSS-supervised-noPCSW-noRefine__2d", "SSS-supervised__2d"]
    assert len(list(ensemble.glob("*.nii.gz"))) == 2 and name in found.stdout
    instructions = (results / "inference_instructions.txt").read_text()
    if information["best"] == name:
        assert "sss_ensemble -i OUTPUT_FOLDER_1 OUTPUT_FOLDER_2 -o OUTPUT_FOLDER --postprocessing" in instructions
        assert "--run SSS-supervised -f 0 1 --save-probabilities --disable-postprocessing" in instructions
    else:
        assert f"--run {information['best'].rpartition('__')[0]} -f 0 1" in instructions

    source = tmp_path / "input"
    shutil.copytree(dataset_dir / "imagesTs", source)
    outputs = []
    for run in TWO_RUNS:
        out = tmp_path / run
        predicted = run_command(["sss_predict", "-i", str(source), "-o", str(out), "-d", "900", "--run", run, "-f", "0", "1",
                                 "--save-probabilities", "--disable-tta", "--no-progress", "-np", "0"], env)
        assert predicted.returncode == 0, predicted.stderr
        outputs.append(str(out))
    combined = run_command(["sss_ensemble", "-i", *outputs, "-o", str(tmp_path / "ensemble"), "--postprocessing",
                            str(ensemble / "postprocessing.json"), "--no-progress"], env)
    assert combined.returncode == 0, combined.stderr
    assert "1 case(s) ensembled from 2 folders" in combined.stdout
    assert read_header(tmp_path / "ensemble" / "test_000.nii.gz") == read_header(source / "test_000_0000.nii.gz")
    info = json.loads((tmp_path / "ensemble" / "ensemble_info.json").read_text())
    assert info["cases"] == ["test_000"] and info["postprocessing_file"] == str(ensemble / "postprocessing.json")

    alone = run_command(["sss_ensemble", "-i", outputs[0], "-o", str(tmp_path / "x")], env)
    assert alone.returncode == 2 and "at least two" in alone.stderr and not (tmp_path / "x").exists()
    no_probabilities = tmp_path / "labels_only"
    no_probabilities.mkdir()
    shutil.copy(tmp_path / "ensemble" / "test_000.nii.gz", no_probabilities)
    refused = run_command(["sss_ensemble", "-i", outputs[0], str(no_probabilities), "-o", str(tmp_path / "y")], env)
    assert refused.returncode == 2 and "labels_only: no <case>_probabilities.npz" in refused.stderr


def _check_reports(env, results):
    """Every fold got its report at the end of training; sss_report makes it again, and a browser loads it."""
    page = results / "SSS-supervised__2d" / "fold_0" / "report" / "index.html"
    assert page.is_file(), "sss_train writes the fold's report after its final validation"
    page.unlink()
    made = run_command(["sss_report", "-d", "900", "--run", "SSS-supervised", "-f", "0"], env)
    assert made.returncode == 0, made.stderr
    assert str(page) in made.stdout and page.is_file()
    summary = json.loads((page.parents[1] / "validation" / "summary.json").read_text())
    text = page.read_text()
    assert f'data-class="mean" data-metric="dice">{metric_cell(summary["mean"]["dice"])}<' in text
    assert "progress.png" in text and "supervised only" in text
    if CHROMIUM:
        assert 'data-images="loaded"' in headless_dom(page)
    none = run_command(["sss_report", "-d", "900", "--run", "nothing"], env)
    assert none.returncode == 2 and "no fold matching" in none.stderr
