"""sss_train through its installed entry point on the small demo dataset, with the tiny SAM-2."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from sss_auto.io.atomic import TEMPORARY_PATTERN
from sss_auto.io.checkpoint import load_checkpoint
from sss_auto.io.nifti import read_header
from tests.conftest import installed_script, kill_9_when, run_command

# SSL right after the warm-up: a few iterations never teach every class (the default start waits for that)
FAST = ["--iters-per-epoch", "2", "--warmup-epochs", "0", "--ssl-start", "warmup", "--batch-size", "2", "--num-workers", "1",
        "--no-progress"]


def test_train_writes_checkpoints_progress_validation_and_refuses_to_overwrite_then_continues(prepared, dataset_dir):
    env, results = prepared
    first = run_command(["sss_train", "DemoBHSD", "2d", "0", "--epochs", "1", *FAST], env)
    assert first.returncode == 0, first.stderr
    fold = results / "SSS__2d" / "fold_0"
    for name in ("checkpoint_latest.pth", "checkpoint_best.pth", "checkpoint_final.pth", "progress.png",
                 "training_log.txt", "training_summary.json", "training_config.json", "validation/summary.json"):
        assert (fold / name).is_file(), name
    assert (fold.parent / "plans.json").is_file() and (fold.parent / "dataset.json").is_file()
    summary = json.loads((fold / "training_summary.json").read_text())
    assert summary["sam2_pretrained"] is False and "RANDOMLY INITIALISED" in summary["sam2_note"]
    assert summary["pcsw_bank_refreshes"]["count"] == 1 and summary["pcsw_bank_refreshes"]["seconds"] > 0
    assert "RANDOMLY INITIALISED" in (fold / "training_log.txt").read_text()
    log = (fold / "training_log.txt").read_text()
    assert ("training on cpu in float32, 1 process(es): SAM-2 test, patch 64x64, batch 2 labeled + 2 unlabeled per "
            "process, 1 epochs x 2 iterations, 0 supervised warm-up epochs") in log
    assert "pseudo labels per class, share of weak-view pixels all/confident: IPH" in log
    assert "PCSW prompts on the 1 labeled validation case(s): IPH recall" in log
    assert "final validation (original geometry, TTA on), coarse (pass 1): mean Dice" in log
    assert "estimated time left: about" in log and "on this machine (1 epochs x 2 iterations" in log
    assert set(summary["final_validation"]["coarse"]["mean_per_class"]) == {"1", "2", "3"}
    state = load_checkpoint(fold / "checkpoint_final.pth")
    assert {"dice_coarse_1", "dice_1", "pl_1", "plc_1", "dfe_gate_1", "swap_rise"} <= set(state["history"])
    measured = [key for key in state["history"] if key.startswith(("found_", "away_"))]
    assert measured and "unreliable_classes" in state["history"], "every SSL validation measures the pseudo labels"
    assert state["bank"]["file"] == "pcsw_bank_epoch_0000.pt", "the checkpoint names the bank's own file"
    assert [p.name for p in fold.glob("pcsw_bank_epoch_*.pt")] == ["pcsw_bank_epoch_0000.pt"]
    validated = sorted(p.name for p in (fold / "validation").glob("*.nii.gz"))
    splits = json.loads((results.parents[1] / "preprocessed" / "Dataset900_DemoBHSD" / "splits_final.json").read_text())
    assert validated == sorted(f"{c}.nii.gz" for c in splits[0]["val"])
    for name in validated:
        assert read_header(fold / "validation" / name) == read_header(dataset_dir / "labelsTr" / name)

    again = run_command(["sss_train", "DemoBHSD", "2d", "0", "--epochs", "1", *FAST], env)
    assert again.returncode == 2 and "--c" in again.stderr

    more = run_command(["sss_train", "DemoBHSD", "2d", "0", "--epochs", "2", "--c", *FAST], env)
    assert more.returncode == 0, more.stderr
    assert "continuing from" in more.stderr
    state = load_checkpoint(fold / "checkpoint_final.pth")
    assert state["epoch"] == 2 and state["iteration"] == 4
    assert state["history"]["epoch"] == [1.0, 2.0]
    assert state["bank"]["file"] == "pcsw_bank_epoch_0000.pt" and "PCSW bank at epoch 1" not in more.stderr, \
        "--c continued with the bank read back from its file (the next refresh is due at epoch 10)"


def test_ablation_switches_train_into_their_own_folders(prepared):
    env, results = prepared
    result = run_command(["sss_train", "DemoBHSD", "2d", "1", "--epochs", "1", "--supervised-only", "--no-refine",
                          "--labeled-augmentation", "copy_paste", "--disable-val-tta", *FAST], env)
    assert result.returncode == 0, result.stderr
    saved = (results / "SSS-supervised-noRefine__2d" / "fold_1" / "training_config.json").read_text()
    assert '"labeled_augmentation": "copy_paste"' in saved
    state = load_checkpoint(results / "SSS-supervised-noRefine__2d" / "fold_1" / "checkpoint_final.pth")
    assert state["teacher"] == {} and not any(k.startswith("refiner.") for k in state["student"])
    assert not any(k.startswith("dfe.blocks") for k in state["student"])

    one_view = run_command(["sss_train", "DemoBHSD", "2d", "2", "--epochs", "1", "--strong-views", "1", "--unready-gate",
                            "--foreground-band", "10", "--reliability-gate", "--cutmix-source", "labeled",
                            "--disable-val-tta", *FAST], env)
    assert one_view.returncode == 0, one_view.stderr
    assert "foreground band: background pseudo labels are ignored on the top" in one_view.stderr
    assert "reliability gate (1 validation case(s)): IPH " in one_view.stderr
    state = load_checkpoint(results / "SSS-views1__2d" / "fold_2" / "checkpoint_final.pth")
    assert "loss_u" in state["history"] and state["iteration"] == 2
    assert state["readiness"] is not None and "unready_classes" in state["history"]  # the gate ran and was logged
    assert len(state["unreliable"]) == 4 and state["history"]["unreliable_classes"][-1] == sum(state["unreliable"])

    both_ways = run_command(["sss_train", "DemoBHSD", "2d", "3", "--epochs", "1", "--no-dfe", "--no-pcsw", "--no-refine",
                             "--cutmix-source", "bidirectional", "--disable-val-tta", *FAST], env)
    assert both_ways.returncode == 0, both_ways.stderr
    state = load_checkpoint(results / "SSS-noDFE-noPCSW-noRefine__2d" / "fold_3" / "checkpoint_final.pth")
    assert "loss_u" in state["history"] and state["iteration"] == 2
    saved = json.loads((results / "SSS-noDFE-noPCSW-noRefine__2d" / "fold_3" / "training_config.json").read_text())
    assert '"cutmix_source": "bidirectional"' in json.dumps(saved)
    refused = run_command(["sss_train", "DemoBHSD", "2d", "3", "--epochs", "1", "--strong-views", "1",
                           "--cutmix-source", "bidirectional", *FAST], env)
    assert refused.returncode == 2 and "--strong-views 1 use --cutmix-source labeled" in refused.stderr, refused.stderr

    no_validation = run_command(["sss_train", "DemoBHSD", "2d", "all", "--reliability-gate", *FAST], env)
    assert no_validation.returncode == 2 and "fold all has none" in no_validation.stderr, no_validation.stderr
    assert not list(results.glob("*/fold_all")), "refused before the fold folder was made"


def test_the_default_start_waits_until_every_labeled_class_is_learned_and_says_so(prepared):
    env, results = prepared
    args = ["sss_train", "DemoBHSD", "2d", "3", "--epochs", "2", "--iters-per-epoch", "2", "--warmup-epochs", "0",
            "--batch-size", "2", "--num-workers", "0", "--no-progress", "--disable-val-tta", "--no-refine", "--no-pcsw"]
    result = run_command(args, env)  # 4 iterations teach no class: the gate stays closed
    assert result.returncode == 0, result.stderr
    fold = results / "SSS-noPCSW-noRefine__2d" / "fold_3"
    assert "semi-supervision waits (ssl_start ready): IPH" in result.stderr
    assert "the semi-supervised phase never started: a labeled class was still not learned" in result.stderr
    summary = json.loads((fold / "training_summary.json").read_text())
    assert summary["semi_supervised"] == {"unlabeled_training": "weak_to_strong", "ssl_start": "ready",
                                          "warmup_held_to_epoch": 2, "started_at_epoch": None, "too_late": False}
    state = load_checkpoint(fold / "checkpoint_final.pth")
    assert "loss_u" not in state["history"] and "ready_dice_1" in state["history"], "supervised, labeled Dice logged"
    assert state["warmup_hold"] == 2 and state["ssl_start_epoch"] is None and state["teacher"]


def test_self_training_labels_the_pool_once_at_the_ssl_start_and_continues_from_it(prepared):
    env, results = prepared
    args = ["sss_train", "DemoBHSD", "2d", "4", "--unlabeled-training", "self_training", "--warmup-epochs", "1",
            "--iters-per-epoch", "2", "--ssl-start", "warmup", "--batch-size", "2", "--num-workers", "1", "--no-progress",
            "--disable-val-tta", "--no-refine", "--no-pcsw"]
    first = run_command([*args, "--epochs", "2"], env)
    assert first.returncode == 0, first.stderr
    assert "self-training: the student pseudo-labelled 2 unlabeled case(s)" in first.stderr
    fold = results / "SSS-noPCSW-noRefine__2d" / "fold_4"
    index = json.loads((fold / "pseudo_labels" / "pool.json").read_text())
    assert index["epoch"] == 1 and index["cases"] == 2 and len(index["thresholds"]) == 4
    assert len(list((fold / "pseudo_labels").glob("*_label.npy"))) == 2
    summary = json.loads((fold / "training_summary.json").read_text())
    assert summary["semi_supervised"]["unlabeled_training"] == "self_training"
    assert summary["semi_supervised"]["started_at_epoch"] == 2
    state = load_checkpoint(fold / "checkpoint_final.pth")
    assert state["history"]["loss_u"][-1] >= 0 and "pool_s" in state["history"] and "swap_rise" not in state["history"]
    more = run_command([*args, "--epochs", "3", "--c"], env)
    assert more.returncode == 0, more.stderr
    assert "pseudo-labelled" not in more.stderr, "--c trains on the pool made before"
    assert load_checkpoint(fold / "checkpoint_final.pth")["iteration"] == 6


def test_2d_memory_trains_supervised_and_semi_supervised_continues_and_predicts_in_the_original_geometry(
        prepared, dataset_dir, tmp_path):
    env, results = prepared
    plans = json.loads((results.parents[1] / "preprocessed" / "Dataset900_DemoBHSD" / "plans.json").read_text())
    memory = plans["configurations"]["2d_memory"]
    assert memory["clip_length"] >= 2 and memory["memory_frames"] >= 1 and memory["data_identifier"] == "2d"
    assert memory["dfe_levels"] == plans["configurations"]["2d"]["dfe_levels"] == [1, 2], "the full method: DFE on clips"
    first = run_command(["sss_train", "DemoBHSD", "2d_memory", "0", "--epochs", "1", *FAST], env)
    assert first.returncode == 0, first.stderr
    assert (f"clips of {memory['clip_length']} slices through {memory['memory_frames']} memory frames (self_sorting)"
            in first.stderr)
    assert "propagated through the slice memory (pass 2): mean Dice" in first.stderr
    fold = results / "SSS__2d_memory" / "fold_0"
    state = load_checkpoint(fold / "checkpoint_final.pth")
    assert any(k.startswith("memory.memory_attention.") for k in state["student"]), "SAM-2's memory modules trained"
    assert "loss_u" in state["history"] and state["iteration"] == 2 and "dfe_gate_1" in state["history"]
    assert "memory_gate" in state["history"] and "memory.gate" in state["student"], "the memory's gate is logged"
    more = run_command(["sss_train", "DemoBHSD", "2d_memory", "0", "--epochs", "2", "--c", *FAST], env)
    assert more.returncode == 0, more.stderr
    state = load_checkpoint(fold / "checkpoint_final.pth")
    assert state["epoch"] == 2 and state["iteration"] == 4 and "continuing from" in more.stderr
    supervised = run_command(["sss_train", "DemoBHSD", "2d_memory", "1", "--epochs", "1", "--supervised-only",
                              "--memory-policy", "fifo", "--disable-val-tta", *FAST], env)
    assert supervised.returncode == 0, supervised.stderr
    assert (results / "SSS-supervised-memoryFifo__2d_memory" / "fold_1" / "checkpoint_final.pth").is_file()

    out = tmp_path / "pred"
    predicted = run_command(["sss_predict", "-i", str(dataset_dir / "imagesTs"), "-o", str(out), "-c", "2d_memory",
                             "--run", "SSS", "--disable-tta", "--no-progress", "-np", "0"], env)
    assert predicted.returncode == 0, predicted.stderr
    for image in sorted((dataset_dir / "imagesTs").glob("*_0000.nii.gz")):
        assert read_header(out / image.name.replace("_0000", "")) == read_header(image)


def test_bad_arguments_and_missing_preprocessing_exit_2(roots, dataset_dir):
    env = dict(os.environ)
    missing = run_command(["sss_train", "DemoBHSD", "2d", "0"], env)
    assert missing.returncode == 2 and "plans.json" in missing.stderr
    wrong_fold = run_command(["sss_train", "DemoBHSD", "2d", "7"], env)
    assert wrong_fold.returncode == 2 and "invalid choice" in wrong_fold.stderr


def _seconds_after(condition, seconds: float):
    """A check that holds once `seconds` have passed since `condition()` first held."""
    first_seen: list[float] = []

    def check() -> bool:
        if not first_seen and condition():
            first_seen.append(time.time())
        return bool(first_seen) and time.time() > first_seen[0] + seconds
    return check


@pytest.mark.slow
def test_kill_9_mid_epoch_and_during_checkpoint_writing_then_continue_matches_an_uninterrupted_run(prepared, tmp_path):
    env, results = prepared
    args = ["sss_train", "DemoBHSD", "2d", "2", "--epochs", "3", "--iters-per-epoch", "3", "--warmup-epochs", "1",
            "--ssl-start", "warmup", "--batch-size", "2", "--num-workers", "1", "--no-progress", "--disable-val-tta"]
    whole = run_command(args, env)
    assert whole.returncode == 0, whole.stderr
    fold = results / "SSS__2d" / "fold_2"
    reference = load_checkpoint(fold / "checkpoint_final.pth")
    (fold.parent).rename(tmp_path / "uninterrupted")

    epoch_1_saved = _seconds_after(lambda: (fold / "checkpoint_latest.pth").exists(), 1.0)
    assert kill_9_when(args, env, epoch_1_saved), "killed about 1 s into epoch 2"
    assert not (fold / "checkpoint_final.pth").exists(), "killed before the end"
    assert load_checkpoint(fold / "checkpoint_latest.pth")["epoch"] == 1

    def writing_a_checkpoint() -> bool:
        return any(fold.glob(".checkpoint_*.tmp*"))

    assert kill_9_when(args + ["--c"], env, writing_a_checkpoint), "killed while a checkpoint was being written"
    if not list(fold.glob(".checkpoint_*.tmp*")):  # the write finished between the check and the kill: leave one as it would
        (fold / ".checkpoint_latest.pth.abc123.tmp.pth").write_bytes(b"half a checkpoint")
    latest = load_checkpoint(fold / "checkpoint_latest.pth")  # the last complete checkpoint loads and verifies
    assert latest["epoch"] in (1, 2)

    resumed = run_command(args + ["--c"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing from" in resumed.stderr
    assert "temporary file(s) left by an interrupted run" in resumed.stderr
    assert not list(fold.glob(TEMPORARY_PATTERN)), "no temporary file remains"
    final = load_checkpoint(fold / "checkpoint_final.pth")
    assert final["iteration"] == reference["iteration"] == 9
    assert final["history"]["epoch"] == reference["history"]["epoch"] == [1.0, 2.0, 3.0]
    # Same batches and views by construction; multithreaded CPU kernels still leave float noise
    # (losses of two fresh runs differ at the 1e-8 level), which a few Adam steps amplify slightly.
    np.testing.assert_allclose(final["history"]["loss"], reference["history"]["loss"], rtol=1e-5)
    for key, value in reference["student"].items():
        torch.testing.assert_close(final["student"][key], value, rtol=1e-3, atol=1e-4, msg=key)


@pytest.mark.slow
def test_kill_9_during_a_rolling_bank_refresh_then_continue_matches_an_uninterrupted_run(prepared, tmp_path):
    env, results = prepared
    args = ["sss_train", "DemoBHSD", "2d", "0", "--epochs", "3", "--iters-per-epoch", "2", "--warmup-epochs", "1",
            "--ssl-start", "warmup", "--pcsw-refresh-epochs", "1", "--pcsw-refresh-fraction", "0.5", "--batch-size", "2",
            "--num-workers", "0", "--no-progress", "--disable-val-tta"]
    whole = run_command(args, env)
    assert whole.returncode == 0, whole.stderr
    assert "PCSW bank refresh at epoch 2 starts: 1 of 2 unlabeled case(s) (rolling refresh" in whole.stderr
    fold = results / "SSS__2d" / "fold_0"
    reference = load_checkpoint(fold / "checkpoint_final.pth")
    reference_bank = load_checkpoint(fold / reference["bank"]["file"])
    fold.parent.rename(tmp_path / "uninterrupted")
    log = fold / "training_log.txt"

    def refreshing() -> bool:
        text = log.read_text() if log.is_file() else ""
        return "PCSW bank refresh at epoch 2 starts" in text and "PCSW bank at epoch 2:" not in text

    assert kill_9_when(args, env, refreshing), "killed during the rolling refresh of epoch 3"
    assert load_checkpoint(fold / "checkpoint_latest.pth")["epoch"] == 2
    resumed = run_command(args + ["--c"], env)
    assert resumed.returncode == 0, resumed.stderr
    final = load_checkpoint(fold / "checkpoint_final.pth")
    bank = load_checkpoint(fold / final["bank"]["file"])
    assert final["iteration"] == reference["iteration"] == 6 and bank["built"] == reference_bank["built"]
    for case, stored in reference_bank["objects"].items():
        assert torch.equal(bank["objects"][case]["labels"], stored["labels"]), case
    np.testing.assert_allclose(final["history"]["loss"], reference["history"]["loss"], rtol=1e-5)
    for key, value in reference["student"].items():
        torch.testing.assert_close(final["student"][key], value, rtol=1e-3, atol=1e-4, msg=key)


@pytest.mark.slow
def test_time_budget_derives_the_epochs_and_continue_keeps_the_derived_schedule(prepared):
    env, results = prepared
    args = ["sss_train", "DemoBHSD", "2d", "4", "--time-budget", "0.5", "--iters-per-epoch", "2", "--warmup-epochs", "2",
            "--batch-size", "2", "--num-workers", "1", "--no-progress", "--disable-val-tta", "--no-refine"]
    fold = results / "SSS-noRefine__2d" / "fold_4"

    def two_epochs_saved() -> bool:
        try:
            return load_checkpoint(fold / "checkpoint_latest.pth")["epoch"] >= 2
        except Exception:  # not written yet, or being replaced
            return False

    assert kill_9_when(args, env, two_epochs_saved), "killed after epoch 2"
    killed = load_checkpoint(fold / "checkpoint_latest.pth")
    # a slow machine plans only 3 epochs in 0.5 min (seen in CI), so the kill comes after epoch 2
    assert killed["budget"]["num_epochs"] > killed["epoch"], "the probe planned more epochs than were done"
    # 2 iterations per epoch: the epochs' measured cost (not the 10-iteration probe) re-planned the run.
    assert killed["budget"]["measured"]["supervised_step_s"] > 0
    assert killed["budget"]["history"] and all(line.startswith("time budget 0.5 min (") for line in killed["budget"]["history"])
    resumed = run_command(args + ["--c"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing the derived schedule of {killed['budget']['num_epochs']} epochs" in resumed.stderr
    summary = json.loads((fold / "training_summary.json").read_text())
    final = load_checkpoint(fold / "checkpoint_final.pth")
    assert summary["epochs"] == final["budget"]["num_epochs"] == final["epoch"]
    assert summary["time_budget"]["budget_min"] == 0.5 and summary["time_budget"]["plans"]
    assert summary["time_budget"]["used_min"] < 2.0, "the budget bounds the run (a loose sanity bound, not a benchmark)"
    assert "time budget 0.5 min: used" in (fold / "training_log.txt").read_text()
    # a few iterations teach no class, so the default start held the warm-up, across the resume, to the end
    assert summary["semi_supervised"]["started_at_epoch"] is None and "loss_u" not in final["history"]
    assert final["warmup_hold"] == final["epoch"] == final["budget"]["warmup_hold"]


@pytest.mark.ddp
@pytest.mark.parametrize("configuration", ["2d", "2d_memory"])
def test_two_cpu_processes_train_under_torchrun_with_gloo(prepared, configuration):
    env, results = prepared
    env = dict(env, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               installed_script("sss_train"), "DemoBHSD", configuration, "3", "--epochs", "1", "--iters-per-epoch", "2",
               "--warmup-epochs", "0", "--ssl-start", "warmup", "--batch-size", "1", "--num-workers", "0", "--no-progress",
               "--disable-val-tta"]
    result = run_command(command, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 ranks finished with identical weights" in result.stderr
    assert "PCSW bank at epoch 0: 2 case(s)" in result.stderr, "each rank did one unlabeled case; the parts were gathered"
    shards = sorted(re.findall(r"rank (\d) of 2: epoch 1 samples unlabeled slices from its shard of 1 of the 2 "
                               r"unlabeled case\(s\) \(reshuffled every epoch\): (\S+)", result.stderr))
    assert [rank for rank, _ in shards] == ["0", "1"] and shards[0][1] != shards[1][1], "the ranks' shards differ"
    state = load_checkpoint(results / f"SSS__{configuration}" / "fold_3" / "checkpoint_final.pth")
    assert state["iteration"] == 2


def test_a_second_process_on_the_same_fold_or_preprocessing_under_a_running_fold_is_refused(prepared):
    env, results = prepared
    args = ["sss_train", "DemoBHSD", "2d", "1", "--epochs", "200", "--iters-per-epoch", "2", "--supervised-only",
            "--no-refine", "--batch-size", "1", "--num-workers", "0", "--no-progress"]
    lock = results / "SSS-supervised-noRefine__2d" / "fold_1" / ".sss.lock"
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (lock.is_file() and f'"pid": {first.pid}' in lock.read_text()) and time.time() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the first run is still training"
        second = run_command(args, env)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"fold_1: in use by pid {first.pid} on " in second.stderr and "sss_train DemoBHSD 2d 1" in second.stderr
        replan = run_command(["sss_plan_and_preprocess", "-d", "DemoBHSD", "--sam2-variant", "test", "--no-progress"], env)
        assert replan.returncode == 2 and "in use by a running training" in replan.stderr
    finally:
        first.kill()
        first.wait()
    resumed = run_command(args[:4] + ["--epochs", "1"] + args[6:] + ["--c"], env)  # the kill left the lock file, not the lock
    assert resumed.returncode == 0, resumed.stderr
    assert "taking over the lock of pid" in resumed.stderr and not lock.exists()
