import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from planners.fingerprint import extract_fingerprint, load_fingerprint
from planners.batch_fit import GIB, fit_batch
from planners.memory import StepShape, estimate_step_memory
from planners.planner import plan, target_spacing
from planners.plans import load_plans, save_plans
from planners.target import PlanTarget
from sss_auto.dataset.raw import load_dataset
from sss_auto.errors import PlansError
from sss_auto.io.atomic import write_json_atomic
from sss_auto.io.nifti import read_image
from sss_auto.io.serialization import to_dict
from sss_auto.networks.config import ModelConfig

REPO = Path(__file__).resolve().parents[2]


def test_median_spacing_for_isotropic_data():
    spacings = np.array([[1.0, 0.8, 0.8], [1.2, 0.9, 0.9], [1.1, 1.0, 1.0]])
    np.testing.assert_allclose(target_spacing(spacings, np.full((3, 3), 100)), [1.1, 0.9, 0.9])


def test_thick_short_axis_takes_its_10th_percentile():
    spacings = np.array([[s, 0.5, 0.5] for s in (3.0, 5.0, 5.0, 5.0, 6.0)])
    shapes = np.array([[20, 512, 512]] * 5)
    target = target_spacing(spacings, shapes)
    assert target[0] == pytest.approx(np.percentile(spacings[:, 0], 10))
    many_slices = np.array([[200, 512, 512]] * 5)  # thick but not short: median is kept
    assert target_spacing(spacings, many_slices)[0] == pytest.approx(5.0)


@pytest.fixture
def fingerprint(dataset_dir):
    return extract_fingerprint(load_dataset(dataset_dir), num_processes=2, progress=False)


def test_fingerprint_has_geometry_intensities_and_object_sizes(fingerprint, dataset_dir, tmp_path):
    assert [c.subset for c in fingerprint.cases].count("unlabeled") == 2
    ct = fingerprint.intensity_per_channel[0]
    assert ct.source == "labeled foreground" and ct.percentile_00_5 < ct.median < ct.percentile_99_5
    iph = fingerprint.classes["1"]
    assert iph.num_components >= 1 and 0 < iph.volume_mm3_min <= iph.volume_mm3_median <= iph.volume_mm3_max
    assert 1 <= iph.slice_extent_min <= iph.slice_extent_max
    labels, slices = [], 0
    for case in (c for c in fingerprint.cases if c.subset == "labeled"):
        label = read_image(dataset_dir / "labelsTr" / f"{case.case_id}.nii.gz")[0]
        labels.append(label.ravel())
        slices += int((label == 1).any(axis=(1, 2)).sum())
    assert iph.voxel_fraction == pytest.approx(float(np.mean(np.concatenate(labels) == 1)))
    assert iph.slice_presence_rate == pytest.approx(slices / sum(c.shape[0] for c in fingerprint.cases if c.subset == "labeled"))
    write_json_atomic(to_dict(fingerprint), tmp_path / "fingerprint.json")
    assert load_fingerprint(tmp_path / "fingerprint.json") == fingerprint


def test_without_weights_the_plan_trains_from_scratch_and_a_cpu_gets_a_cpu_plan(fingerprint):
    from planners.planner import CPU_MAX_BATCH, FROM_SCRATCH_LEARNING_RATE, FROM_SCRATCH_VARIANT

    gpu = plan(fingerprint, PlanTarget("cuda", 40.0)).configuration("2d")
    assert (gpu.sam2_variant, gpu.pretrained, gpu.device) == (FROM_SCRATCH_VARIANT, False, "cuda")
    assert gpu.training.learning_rate == FROM_SCRATCH_LEARNING_RATE and gpu.training.time_budget_min is None
    assert "from scratch" in gpu.weights_note and gpu.sam2_checkpoint is None
    assert (gpu.refine, gpu.dfe_levels) == (False, ()), "from scratch: weak-to-strong with the coarse head"
    assert "the best semi-supervised variant from scratch" in gpu.weights_note
    full = plan(fingerprint, PlanTarget("cuda", 40.0), method="full").configuration("2d")
    assert (full.refine, full.dfe_levels) == (True, (1, 2)) and "forced" in full.weights_note
    assert full.estimated_step_memory_gib > gpu.estimated_step_memory_gib, "the estimate is of the planned network"
    cpu = plan(fingerprint, PlanTarget("cpu", 40.0)).configuration("2d")
    assert cpu.device == "cpu" and cpu.batch_size_labeled <= CPU_MAX_BATCH < gpu.batch_size_labeled
    assert cpu.training.time_budget_min == 60.0 and cpu.training.iterations_per_epoch == 50
    forced = plan(fingerprint, PlanTarget("cuda", 40.0), "tiny").configuration("2d")
    assert forced.sam2_variant == "tiny" and not forced.pretrained and "forced" in forced.weights_note


def test_with_weights_a_gpu_takes_the_largest_that_fits_and_a_cpu_the_smallest(fingerprint, tmp_path):

    weights = {"tiny": tmp_path / "sam2.1_hiera_tiny.pt", "large": tmp_path / "sam2.1_hiera_large.pt"}
    gpu = plan(fingerprint, PlanTarget("cuda", 60.0, weights)).configuration("2d")
    assert (gpu.sam2_variant, gpu.pretrained, gpu.sam2_checkpoint) == ("large", True, str(weights["large"]))
    assert gpu.training.learning_rate == 1e-4 and gpu.training.num_epochs == 300
    assert (gpu.refine, gpu.dfe_levels) == (True, (1, 2)), "with weights: the full method"
    w2s = plan(fingerprint, PlanTarget("cpu", 8.0, weights), method="weak_to_strong").configuration("2d")
    assert (w2s.refine, w2s.dfe_levels, w2s.pretrained) == (False, (), True)  # on the CPU plan: 17 s less than large's
    cpu = plan(fingerprint, PlanTarget("cpu", 8.0, weights)).configuration("2d")
    assert (cpu.sam2_variant, cpu.pretrained) == ("tiny", True)
    small_gpu = plan(fingerprint, PlanTarget("cuda", 3.0, weights)).configuration("2d")
    assert small_gpu.sam2_variant == "tiny", "large does not fit 3 GiB; tiny has weights"


def test_find_weights_reads_the_variant_from_the_official_name_and_searches_the_cache(tmp_path, monkeypatch):
    from planners.target import find_weights
    from sss_auto.errors import CheckpointError

    monkeypatch.setenv("SSS_SAM2_DIR", str(tmp_path))
    monkeypatch.delenv("SSS_SAM2_CHECKPOINT", raising=False)
    assert find_weights() == {}
    (tmp_path / "sam2_hiera_small.pt").write_bytes(b"x")
    (tmp_path / "sam2.1_hiera_base_plus.pt").write_bytes(b"x")
    assert find_weights() == {"small": tmp_path / "sam2_hiera_small.pt", "base_plus": tmp_path / "sam2.1_hiera_base_plus.pt"}
    mine = tmp_path / "my_weights.pt"
    mine.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="my_weights.pt: cannot be loaded"):
        find_weights(mine)
    assert find_weights(mine, "tiny") == {"tiny": mine}
    torch.save({"model": {"image_encoder.neck.w": torch.zeros(1)}}, mine)
    with pytest.raises(CheckpointError, match="neither a published file name.*--sam2-variant"):
        find_weights(mine)
    torch.save({"model": {f"image_encoder.trunk.blocks.{i}.attn.qkv.weight": torch.zeros(1) for i in range(16)}}, mine)
    assert find_weights(mine) == {"small": mine}, "the variant is read from the Hiera blocks when the name says nothing"
    (tmp_path / "MedSAM2_latest.pt").write_bytes(b"x")
    (tmp_path / "sam2.1_hiera_tiny.pt").write_bytes(b"x")
    assert find_weights(mine.with_name("MedSAM2_latest.pt")) == {"tiny": tmp_path / "MedSAM2_latest.pt"}
    monkeypatch.delenv("SSS_SAM2_CHECKPOINT", raising=False)
    assert find_weights()["tiny"] == tmp_path / "MedSAM2_latest.pt", "downloaded medical weights come first"
    monkeypatch.setenv("SSS_SAM2_CHECKPOINT", str(tmp_path / "sam2.1_hiera_large.pt"))
    with pytest.raises(CheckpointError, match="sam2.1_hiera_large.pt: SAM-2 checkpoint not found"):
        find_weights()


def test_plans_round_trip_and_fit_the_budget(fingerprint, tmp_path):
    plans = plan(fingerprint, PlanTarget("cuda", 2.0), "test")
    config = plans.configuration("2d")
    assert config.patch_size[0] % 32 == 0 and config.patch_size[0] == config.patch_size[1]
    assert 2 <= config.batch_size_labeled and config.estimated_step_memory_gib <= 2.0
    save_plans(plans, tmp_path / "plans.json")
    assert load_plans(tmp_path / "plans.json") == plans


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(patch_size=[100, 100]), "patch_size"),
    (lambda c: c.update(sam2_variant="huge"), "sam2_variant"),
    (lambda c: c.update(batch_size_labeled=0), "batch"),
    (lambda c: c.update(unknown_key=1), "unknown_key"),
    (lambda c: c.update(dfe_inputs="both"), "dfe_inputs: 'both' is not one of strong_pair, weak_strong"),
    (lambda c: c.update(device="tpu"), "device: 'tpu' is not one of cuda, cpu"),
    (lambda c: c.update(pretrained=True), "pretrained: true needs an official variant"),
    (lambda c: c["training"].update(confidence_mode="local"), "training.confidence_mode: 'local' is not one of"),
    (lambda c: c["training"].update(pseudo_label_alignment="x"), "training.pseudo_label_alignment"),
    (lambda c: c["training"].update(unlabeled_ce="x"), "training.unlabeled_ce"),
    (lambda c: c["training"].update(foreground_band=-1), "training.foreground_band: -1.0 must be >= 0"),
    (lambda c: c["training"].update(foreground_band=10, unlabeled_training="self_training"),
     "training.foreground_band: 10.0 applies to the online weak_to_strong step"),
    (lambda c: c["training"].update(strong_photometric="x"), "training.strong_photometric"),
    (lambda c: c["training"].update(unlabeled_weight=1.5), "training.unlabeled_weight: 1.5 must be >= 0 and <= 1"),
    (lambda c: c["training"].update(warmup_fraction=1.0), "training.warmup_fraction: 1.0 must be in"),
    (lambda c: c["training"].update(time_budget_min=-2), "training.time_budget_min: -2"),
    # the edits of issue 13 §2, each once a traceback or a silent run
    (lambda c: c.update(encoder="bogus"), r"configurations.2d.encoder: 'bogus' is not one of hiera, conv"),
    (lambda c: c["training"].update(iterations_per_epoch=0), r"training.iterations_per_epoch: 0 must be >= 1"),
    (lambda c: c["training"].update(num_epochs=-3), r"training.num_epochs: -3 must be >= 1"),
    (lambda c: c["training"].update(confidence_threshold=1.7), r"training.confidence_threshold: 1.7 must be > 0 and <= 1"),
    (lambda c: c["training"].update(learning_rate=0), r"training.learning_rate: 0(.0)? must be > 0"),
    (lambda c: c["training"].update(ema_decay=1), r"training.ema_decay: 1 would never update the teacher"),
    (lambda c: c["training"].update(pcsw_refresh_epochs=0), r"training.pcsw_refresh_epochs: 0 must be >= 1"),
    (lambda c: c["training"].update(foreground_oversampling=2), r"training.foreground_oversampling: 2(.0)? must be >= 0 and <= 1"),
    (lambda c: c.update(resample_z=True), r"resample_z: true is not supported"),
    (lambda c: c["training"].update(num_epochs="ten"), r"num_epochs"),
])
def test_invalid_edited_plans_are_refused_naming_the_key(fingerprint, tmp_path, edit, message):
    save_plans(plan(fingerprint, PlanTarget("cuda", 2.0), "test"), tmp_path / "plans.json")
    data = json.loads((tmp_path / "plans.json").read_text())
    edit(data["configurations"]["2d"])
    (tmp_path / "plans.json").write_text(json.dumps(data))
    with pytest.raises(PlansError, match=message):
        load_plans(tmp_path / "plans.json")


def test_2d_memory_is_planned_beside_2d_on_its_arrays_with_clips_that_fit(fingerprint):
    plans = plan(fingerprint, PlanTarget("cpu", 8.0), method="full")
    flat, memory = plans.configuration("2d"), plans.configuration("2d_memory")
    assert (memory.patch_size, memory.spacing_mm, memory.sam2_variant, memory.refine) == (
        flat.patch_size, flat.spacing_mm, flat.sam2_variant, flat.refine)
    assert (memory.clip_length, memory.memory_frames, memory.memory_policy) == (4, 3, "self_sorting")
    assert memory.batch_size_labeled * memory.clip_length == flat.batch_size_labeled, "a CPU step: 2d's slices"
    assert memory.dfe_levels == flat.dfe_levels == (1, 2) and memory.dfe_inputs == "strong_pair", "DFE on clips too"
    assert plans.data_folder("2d_memory") == "2d" and plans.data_folder("2d") == "2d"
    gpu = plan(fingerprint, PlanTarget("cuda", 40.0)).configuration("2d_memory")
    assert (gpu.clip_length, gpu.memory_frames) == (8, 6) and gpu.batch_size_labeled >= 1
    assert gpu.estimated_step_memory_gib <= 40.0


@pytest.mark.parametrize("edit, message", [
    ({"clip_length": 1}, r"configurations.2d_memory.clip_length: 1 must be >= 2"),
    ({"memory_frames": 9}, r"configurations.2d_memory.memory_frames: 9 must be in 1..6"),
    ({"memory_policy": "lru"}, r"configurations.2d_memory.memory_policy: 'lru' is not one of fifo, self_sorting"),
    ({"dfe_levels": [1], "dfe_inputs": "weak_strong"},
     r"configurations.2d_memory.dfe_inputs: 'weak_strong' must be 'strong_pair' with a clip and DFE levels"),
    ({"data_identifier": "3d"}, r"configurations.2d_memory.data_identifier: '3d' must name a planned configuration"),
])
def test_invalid_edited_2d_memory_plans_are_refused_naming_the_key(fingerprint, tmp_path, edit, message):
    save_plans(plan(fingerprint, PlanTarget("cuda", 2.0), "test"), tmp_path / "plans.json")
    data = json.loads((tmp_path / "plans.json").read_text())
    data["configurations"]["2d_memory"].update(edit)
    (tmp_path / "plans.json").write_text(json.dumps(data))
    with pytest.raises(PlansError, match=message):
        load_plans(tmp_path / "plans.json")


def _plans_with_training(fingerprint, tmp_path, edits: dict[str, dict]):
    """A planned plans.json with `edits` ({configuration: {training field: value}}) written into it; its path."""
    save_plans(plan(fingerprint, PlanTarget("cuda", 2.0), "test"), tmp_path / "plans.json")
    data = json.loads((tmp_path / "plans.json").read_text())
    for configuration, fields in edits.items():
        data["configurations"][configuration]["training"].update(fields)
    (tmp_path / "plans.json").write_text(json.dumps(data))
    return tmp_path / "plans.json"


@pytest.mark.parametrize("key, value, message", [
    ("unlabeled_training", "self_training", r"self_training trains on single slices \(2d\); this configuration trains "
                                            r"on clips of \d+"),
    ("labeled_augmentation", "copy_paste", r"copy_paste mixes single slices; this configuration trains on clips of \d+")])
def test_a_slice_only_training_value_is_planned_for_2d_and_refused_for_clips_naming_the_key(fingerprint, tmp_path, key,
                                                                                             value, message):
    path = _plans_with_training(fingerprint, tmp_path, {"2d": {key: value}})
    assert getattr(load_plans(path).configuration("2d").training, key) == value
    path = _plans_with_training(fingerprint, tmp_path, {"2d_memory": {key: value}})
    with pytest.raises(PlansError, match=rf"configurations.2d_memory.training.{key}: {message}"):
        load_plans(path)


def test_labeled_cutmix_boxes_only_where_2d_weak_to_strong_draws_strong_views(fingerprint, tmp_path):
    path = _plans_with_training(fingerprint, tmp_path, {"2d": {"cutmix_source": "labeled"}})
    assert load_plans(path).configuration("2d").training.cutmix_source == "labeled"
    for configuration, edit in (("2d_memory", {"cutmix_source": "labeled"}),
                                ("2d", {"cutmix_source": "bidirectional", "unlabeled_training": "self_training"})):
        path = _plans_with_training(fingerprint, tmp_path, {configuration: edit})
        with pytest.raises(PlansError, match=rf"configurations.{configuration}.training.cutmix_source: "
                                             rf"{edit['cutmix_source']} boxes are "
                                             r"pasted into the strong views of the 2d weak_to_strong step"):
            load_plans(path)
    path = _plans_with_training(fingerprint, tmp_path, {"2d": {"cutmix_source": "bogus"}})
    with pytest.raises(PlansError, match=r"cutmix_source.*unlabeled, labeled, bidirectional"):
        load_plans(path)


@pytest.mark.parametrize("edit, message", [
    ({"order_label": 7}, r"resampling.order_label: 7 must be a spline order 0..5"),
    ({"order_image": -1}, r"resampling.order_image: -1 must be a spline order"),
    ({"anisotropy_threshold": 0.5}, r"resampling.anisotropy_threshold: 0.5 must be > 1"),
])
def test_invalid_resampling_plans_are_refused_naming_the_key(fingerprint, tmp_path, edit, message):
    save_plans(plan(fingerprint, PlanTarget("cuda", 2.0), "test"), tmp_path / "plans.json")
    data = json.loads((tmp_path / "plans.json").read_text())
    data["resampling"].update(edit)
    (tmp_path / "plans.json").write_text(json.dumps(data))
    with pytest.raises(PlansError, match=message):
        load_plans(tmp_path / "plans.json")


def test_smaller_budget_gives_smaller_batch_or_patch(fingerprint):
    big = plan(fingerprint, PlanTarget("cuda", 4.0), "test", method="full").configuration("2d")
    small = plan(fingerprint, PlanTarget("cuda", 0.2), "test", method="full").configuration("2d")
    assert (small.batch_size_labeled, small.patch_size) < (big.batch_size_labeled, big.patch_size) or \
        small.batch_size_labeled < big.batch_size_labeled
    with pytest.raises(PlansError, match="fits"):
        plan(fingerprint, PlanTarget("cuda", 0.01), "test", method="full")


def test_memory_grows_with_batch_and_patch():
    config = ModelConfig(1, 4, 128, "test")
    one = estimate_step_memory(StepShape(config, 1, 1))
    two = estimate_step_memory(StepShape(config, 2, 2))
    big = estimate_step_memory(StepShape(replace(config, image_size=256), 1, 1))
    assert one.persistent_bytes == two.persistent_bytes
    assert two.activation_bytes > 1.5 * one.activation_bytes and big.activation_bytes > 3 * one.activation_bytes
    batch, estimate = fit_batch(config, 1 * GIB, 12)
    assert batch >= 1 and estimate.total_bytes <= 1 * GIB


def test_mixed_precision_scales_activations_and_workspace_but_not_the_weights():
    from planners.memory import MIXED_PRECISION_FACTOR

    config = ModelConfig(1, 4, 64, "test")
    full = estimate_step_memory(StepShape(config, 2, 2))
    mixed = estimate_step_memory(StepShape(config, 2, 2, mixed_precision=True))
    assert mixed.persistent_bytes == full.persistent_bytes
    assert mixed.activation_bytes == pytest.approx(MIXED_PRECISION_FACTOR * full.activation_bytes, abs=1)
    assert mixed.workspace_bytes == pytest.approx(MIXED_PRECISION_FACTOR * full.workspace_bytes, abs=1)
    assert fit_batch(config, full.total_bytes, 12)[0] <= fit_batch(config, full.total_bytes, 12, mixed_precision=True)[0]


def test_the_chosen_batch_never_exceeds_the_budget():
    """Batch 2's larger workspace once pushed the extrapolated estimate past the budget (12.2 GiB planned for 12)."""
    from planners.planner import choose_model

    config = ModelConfig(1, 6, 128, "test")
    batches = []
    for budget_gib in (0.3, 0.45, 0.6, 0.9):
        batch, estimate = fit_batch(config, int(budget_gib * GIB), 12)
        batches.append(batch)
        if batch:
            assert estimate.total_bytes <= budget_gib * GIB, (budget_gib, batch)
        if batch >= 2:
            assert choose_model(1, 6, 128, budget_gib, "test")[3] <= budget_gib
    assert batches == sorted(batches) and batches[-1] >= 2, f"the budgets span fitting batches: {batches}"


@pytest.mark.slow
def test_estimate_matches_memory_measured_on_the_cpu():
    """Estimate vs the measured peak RSS growth of one real step (test variant, 256², batch 4).

    On this project's CI machine the relative error (estimate − measured) / measured was −16 % … +3 %
    in fresh standalone processes and +30 % / +34 % when launched late in the full suite (the peak RSS
    of the same step varies with the machine's memory state). A low estimate risks running out of
    memory, a high one only wastes batch size, so the band is asymmetric.
    """
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "measure_step_memory.py"), "--patch", "256",
                          "--batch", "4"], capture_output=True, text=True, check=True, cwd=REPO)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert -0.25 < result["relative_error"] < 0.5, result


@pytest.mark.slow
def test_clip_step_estimate_matches_memory_measured_on_the_cpu():
    """2d_memory: the clip step's estimate vs the measured peak RSS growth of one real clip step
    (test variant, 256², one clip of 4 slices, 3 memory frames), with the band of the 2d step's test.

    Measured +20 % standalone with the reduced test memory (+21 % with SAM-2's full modules; benchmarks.md); at
    128² the allocator reuses the warm-up model's freed
    memory for the weights and the growth undercounts them (+235 %), so the larger step is checked.
    """
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "measure_step_memory.py"), "--patch", "256",
                          "--batch", "1", "--clip-length", "4", "--memory-frames", "3"],
                         capture_output=True, text=True, check=True, cwd=REPO)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["clip_length"] == 4 and -0.25 < result["relative_error"] < 0.5, result
