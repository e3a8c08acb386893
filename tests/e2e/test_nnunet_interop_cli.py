"""A dataset in nnU-Net's folders: found in nnUNet_raw, trained on nnU-Net's folds, nothing written there."""

import json
import os
import shutil

from tests.conftest import run_command


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_dataset_in_nnunet_raw_is_planned_and_trained_on_nnunet_folds_without_writing_there(demo_template, roots, tmp_path):
    nnunet_raw, nnunet_pre = tmp_path / "nnUNet_raw", tmp_path / "nnUNet_preprocessed"
    shutil.copytree(demo_template, nnunet_raw / demo_template.name)
    labeled = sorted(p.name[: -len(".nii.gz")] for p in (demo_template / "labelsTr").glob("*.nii.gz"))
    folds = [{"train": labeled[1:], "val": labeled[:1]}] * 5  # not what sss-auto's seeded shuffle would choose
    (nnunet_pre / demo_template.name).mkdir(parents=True)
    (nnunet_pre / demo_template.name / "splits_final.json").write_text(json.dumps(folds))
    before = (_snapshot(nnunet_raw), _snapshot(nnunet_pre))
    env = dict(os.environ, nnUNet_raw=str(nnunet_raw), nnUNet_preprocessed=str(nnunet_pre), HOME=str(tmp_path / "home"))
    env.pop("SSS_raw")

    planned = run_command(["sss_plan_and_preprocess", "-d", "900", "--sam2-variant", "test", "--no-progress"], env)
    assert planned.returncode == 0, planned.stderr
    assert "looked for in nnUNet_raw" in planned.stderr and "read only" in planned.stderr
    trained = run_command(["sss_train", "900", "2d", "0", "--epochs", "1", "--iters-per-epoch", "2", "--batch-size", "2",
                           "--supervised-only", "--num-workers", "1", "--no-progress"], env)
    assert trained.returncode == 0, trained.stderr
    assert "nnU-Net's folds" in trained.stderr
    assert json.loads((roots["preprocessed"] / demo_template.name / "splits_final.json").read_text()) == folds
    assert (roots["results"] / demo_template.name).is_dir()
    assert (_snapshot(nnunet_raw), _snapshot(nnunet_pre)) == before, "nothing written into nnU-Net's folders"
