import json
import math

import pytest
import torch

from sss_auto.configuration import Ablation
from sss_auto.data.strong import BCP_BOX_SIDE, StrongView, cutmix_masks, photometric, strong_view
from sss_auto.dataset.splits import fold_cases, load_or_create_splits, make_splits
from sss_auto.errors import CheckpointError, PlansError
from sss_auto.io.checkpoint import load_checkpoint, save_checkpoint
from sss_auto.method.losses import dice_ce_loss, foreground_logits, unlabeled_loss
from sss_auto.training.ema import ema_decay, make_teacher, update_teacher


def test_ema_decay_follows_min_formula_and_update_moves_towards_student():
    assert ema_decay(0, 0.996) == 0.0
    assert ema_decay(9, 0.996) == pytest.approx(0.9)
    assert ema_decay(10_000, 0.996) == 0.996
    student = torch.nn.Linear(2, 2)
    teacher = make_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    before = teacher.weight.clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    update_teacher(teacher, student, 0.75)
    torch.testing.assert_close(teacher.weight, 0.75 * before + 0.25 * student.weight)


def test_dice_ce_is_low_for_a_correct_prediction_and_masked_pixels_do_not_count():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:5, 2:5] = 1
    good = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float() * 20 - 10
    bad = -good
    assert dice_ce_loss(good, target) < 0.01 < 0.9 < dice_ce_loss(bad, target)
    valid = torch.zeros_like(target, dtype=torch.bool)
    assert dice_ce_loss(bad, target, valid) == 0.0
    valid[:, 2:5, 2:5] = True  # only the correct part of a half-wrong prediction counts
    half = good.clone()
    half[:, :, :2] = bad[:, :, :2]
    assert dice_ce_loss(half, target, valid) < 0.01


def test_dice_ignores_classes_absent_from_the_target_so_background_batches_do_not_reward_extreme_logits():
    target = torch.zeros(2, 8, 8, dtype=torch.long)  # a lesion-free batch: class 1 and 2 absent
    logits = torch.zeros(2, 3, 8, 8)
    logits[:, 0] = 6.0  # confident, but not infinitely confident, background
    loss = dice_ce_loss(logits, target)
    assert loss < 0.01, "with the old smoothed Dice over every class this was ~0.5 until logits diverge"
    torch.testing.assert_close(loss, 0.5 * torch.nn.functional.cross_entropy(logits, target))
    target[0, 2:4, 2:4] = 2  # class 2 present: its Dice counts, absent class 1 still does not
    with_class_2 = dice_ce_loss(logits, target)
    assert 0.4 < with_class_2 < 0.6


def test_class_balanced_ce_weighs_each_present_class_equally_whatever_its_pixel_count():
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[0, 0, :2] = 1  # 2 lesion pixels among 98 background pixels
    logits = torch.zeros(1, 3, 10, 10)
    logits[:, 0] = 4.0  # background everywhere: the lesion is missed
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    pixel = dice_ce_loss(logits, target)
    balanced = dice_ce_loss(logits, target, class_balanced_ce=True)
    dice_part = pixel - 0.5 * ce.mean()
    torch.testing.assert_close(balanced - dice_part, 0.5 * (ce[target == 0].mean() + ce[target == 1].mean()) / 2)
    assert balanced > pixel  # the missed lesion weighs half, not 2 %
    valid = target == 0  # only background valid: one class present, the CE of its pixels
    torch.testing.assert_close(dice_ce_loss(logits, target, valid, class_balanced_ce=True),
                               dice_ce_loss(logits, target, valid))


def test_pair_targets_add_minus_log_of_the_two_classes_probability_to_the_ce_and_stay_out_of_the_dice():
    torch.manual_seed(0)
    logits, target = torch.randn(1, 4, 6, 6), torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, :2] = 1
    valid = torch.zeros(1, 6, 6, dtype=torch.bool)
    valid[0, :3] = True  # rows 0-1: class 1, row 2: background
    pair_valid = torch.zeros_like(valid)
    pair_valid[0, 4] = True  # row 4: "class 2 or class 3"
    first, second = target.clone(), torch.zeros_like(target)
    first[0, 4], second[0, 4] = 2, 3
    with_pairs = dice_ce_loss(logits, first, valid, pairs=(second, pair_valid))
    p = logits.softmax(1)
    ce = torch.nn.functional.cross_entropy(logits, first, reduction="none")
    pair_ce = -torch.log(p[:, 2] + p[:, 3])
    expected_ce = (ce[valid].sum() + pair_ce[pair_valid].sum()) / (valid.sum() + pair_valid.sum())
    dice_part = dice_ce_loss(logits, first, valid) - 0.5 * ce[valid].mean()
    torch.testing.assert_close(with_pairs, 0.5 * expected_ce + dice_part)
    no_pairs = dice_ce_loss(logits, first, valid, pairs=(second, torch.zeros_like(valid)))
    torch.testing.assert_close(no_pairs, dice_ce_loss(logits, first, valid))
    with pytest.raises(ValueError, match="class_balanced_ce"):
        dice_ce_loss(logits, first, valid, class_balanced_ce=True, pairs=(second, pair_valid))


def test_the_foreground_unlabeled_loss_teaches_where_not_which_and_the_other_modes_are_dice_ce():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 6, 6), torch.randint(0, 4, (2, 6, 6))
    valid = torch.rand(2, 6, 6) > 0.3
    two = foreground_logits(logits)
    torch.testing.assert_close(two.softmax(1)[:, 1], logits.softmax(1)[:, 1:].sum(1))
    loss = unlabeled_loss(logits, target, valid, "foreground")
    torch.testing.assert_close(loss, dice_ce_loss(two, (target > 0).long(), valid))
    swapped = logits[:, [0, 2, 1, 3]]  # which foreground class the network picks does not matter
    torch.testing.assert_close(unlabeled_loss(swapped, target, valid, "foreground"), loss)
    assert unlabeled_loss(swapped, target, valid, "pixel") != pytest.approx(unlabeled_loss(logits, target, valid, "pixel"))
    torch.testing.assert_close(unlabeled_loss(logits, target, valid, "class_balanced"),
                               dice_ce_loss(logits, target, valid, class_balanced_ce=True))


def test_cutmix_mixes_images_and_pseudo_labels_with_the_same_boxes():
    g = torch.Generator().manual_seed(3)
    x_w = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 16, 16).contiguous()
    view = strong_view(x_w, g)
    assert view.mix.any(), "seed 3 draws at least one box"
    y_hat = torch.arange(4).view(4, 1, 1).expand(4, 16, 16)
    conf = torch.rand(4, 16, 16)
    y_mix, conf_mix = view.mix_targets(y_hat, conf)
    for b in range(4):
        inside = view.mix[b]
        assert torch.all(y_mix[b][inside] == view.partner[b]) and torch.all(y_mix[b][~inside] == b)
        torch.testing.assert_close(conf_mix[b][inside], conf[view.partner[b]][inside])


def test_a_labeled_cutmix_source_pastes_labeled_boxes_with_their_labels_at_full_confidence():
    g = torch.Generator().manual_seed(3)
    x_w = torch.zeros(4, 1, 16, 16)
    x_l = torch.arange(1.0, 3.0).view(2, 1, 1, 1).expand(2, 1, 16, 16).contiguous() * 100  # 100, 200
    y_l = torch.stack([torch.full((16, 16), 5), torch.full((16, 16), 7)])
    view = strong_view(x_w, g, "full", labeled=(x_l, y_l))
    assert view.mix.any() and set(view.partner.tolist()) <= {0, 1}
    y_hat, conf = torch.zeros(4, 16, 16, dtype=torch.long), torch.full((4, 16, 16), 0.3)
    y_mix, conf_mix = view.mix_targets(y_hat, conf)
    for b in range(4):
        inside, partner = view.mix[b], int(view.partner[b])
        assert torch.all(view.x[b, 0][inside] == 100.0 * (partner + 1)), "the labeled slice, as the loader made it"
        assert torch.all(y_mix[b][inside] == (5, 7)[partner]) and torch.all(conf_mix[b][inside] == 1.0)
        assert torch.all(y_mix[b][~inside] == 0) and torch.all(conf_mix[b][~inside] == 0.3)
        assert not torch.any(view.x[b, 0][~inside] >= 100.0), "outside: the strong unlabeled view"


def test_a_labeled_context_view_keeps_a_bcp_box_of_the_strong_view_in_a_labeled_slice():
    g = torch.Generator().manual_seed(5)
    x_w = torch.zeros(4, 1, 18, 18)
    x_l = torch.arange(1.0, 3.0).view(2, 1, 1, 1).expand(2, 1, 18, 18).contiguous() * 100  # 100, 200
    y_l = torch.stack([torch.full((18, 18), 5), torch.full((18, 18), 7)])
    view = strong_view(x_w, g, "full", labeled=(x_l, y_l), labeled_context=True)
    side = round(18 * BCP_BOX_SIDE)
    y_hat, conf = torch.zeros(4, 18, 18, dtype=torch.long), torch.full((4, 18, 18), 0.3)
    y_mix, conf_mix = view.mix_targets(y_hat, conf)
    for b in range(4):
        box, partner = ~view.mix[b], int(view.partner[b])
        rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
        assert int(box.sum()) == side * side and len(rows) == side and len(cols) == side, "always one 2/3-side box"
        assert torch.all(view.x[b, 0][~box] == 100.0 * (partner + 1)), "outside: the labeled slice as loaded"
        assert not torch.any(view.x[b, 0][box] >= 100.0), "inside: the strong unlabeled view"
        assert torch.all(y_mix[b][~box] == (5, 7)[partner]) and torch.all(conf_mix[b][~box] == 1.0)
        assert torch.all(y_mix[b][box] == 0) and torch.all(conf_mix[b][box] == 0.3)
    with pytest.raises(ValueError, match="labeled_context needs the labeled batch"):
        strong_view(x_w, g, labeled_context=True)


def test_bidirectional_steps_paste_labeled_into_unlabeled_in_view_1_and_the_reverse_in_view_2(monkeypatch):
    from sss_auto.training import step_kinds
    drawn = []
    monkeypatch.setattr(step_kinds, "strong_view", lambda x_w, g, strength, labeled, labeled_context=False:
                        drawn.append((labeled is not None, labeled_context)))
    monkeypatch.setattr(step_kinds, "sss_step", lambda *args: None)

    class Batch:
        x_w, x_l, y_l = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)
    for source, expected in (("unlabeled", [(False, False)] * 2), ("labeled", [(True, False)] * 2),
                             ("bidirectional", [(True, False), (True, True)])):
        drawn.clear()
        step_kinds.step_kind(0, 2, "full", source).semi_supervised(Batch(), None, None, None, None)
        assert drawn == expected, source


def test_strong_views_are_reproducible_from_the_seed():
    x = torch.randn(3, 1, 16, 16)
    a = strong_view(x, torch.Generator().manual_seed(1))
    b = strong_view(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.x, b.x)
    assert torch.equal(a.mix, b.mix)
    assert not torch.equal(a.x, x)


def test_mild_strong_views_change_intensities_less_than_full_ones():
    x = torch.linspace(0, 1, 16 * 16).view(1, 1, 16, 16).repeat(64, 1, 1, 1)
    change = {}
    for strength in ("full", "mild"):
        views = photometric(x, torch.Generator().manual_seed(0), strength)
        change[strength] = (views - x).abs().mean().item()
    assert change["mild"] < 0.7 * change["full"]


def test_unlabeled_weight_ramps_up_with_mean_teachers_sigmoid_then_stays():
    from sss_auto.training.loop import unlabeled_weight

    assert unlabeled_weight(0.5, 0, 0) == 0.5  # no ramp
    assert unlabeled_weight(0.5, 0, 100) == pytest.approx(0.5 * math.exp(-5))
    assert unlabeled_weight(0.5, 50, 100) == pytest.approx(0.5 * math.exp(-1.25))
    assert unlabeled_weight(0.3, 100, 100) == unlabeled_weight(0.3, 500, 100) == 0.3


def test_cutmix_boxes_respect_the_area_range():
    masks = cutmix_masks(200, 32, 32, torch.Generator().manual_seed(0))
    areas = masks.flatten(1).float().mean(1)
    boxed = areas[areas > 0]
    assert 60 < len(boxed) < 140  # probability 0.5
    assert boxed.min() >= 0.01 and boxed.max() <= 0.45


def test_splits_are_seeded_cover_every_case_once_and_respect_a_user_file(tmp_path):
    ids = [f"c{i}" for i in range(12)]
    splits = make_splits(ids)
    assert splits == make_splits(ids) and len(splits) == 5
    assert sorted(c for s in splits for c in s["val"]) == sorted(ids)
    assert all(not set(s["val"]) & set(s["train"]) for s in splits)
    path = tmp_path / "splits_final.json"
    load_or_create_splits(path, ids)
    edited = [{"train": ids[2:], "val": ids[:2]}]
    path.write_text(json.dumps(edited))
    assert load_or_create_splits(path, ids) == edited
    assert fold_cases(edited, "0", ids) == (ids[2:], ids[:2])
    assert fold_cases(edited, "all", ids) == (sorted(ids), [])
    with pytest.raises(PlansError, match="fold 3 does not exist"):
        fold_cases(edited, "3", ids)
    path.write_text(json.dumps([{"train": ["ghost"], "val": ids[:1]}]))
    with pytest.raises(PlansError, match="ghost"):
        load_or_create_splits(path, ids)


def test_few_cases_still_give_five_folds_with_a_validation_case():
    splits = make_splits(["a", "b", "c"])
    assert len(splits) == 5 and all(len(s["val"]) == 1 and len(s["train"]) == 2 for s in splits)


def test_checkpoint_round_trip_and_corruption_is_detected(tmp_path):
    state = {"student": {"w": torch.randn(1000)}, "epoch": 3, "history": {"loss": [1.0, math.nan]}}
    path = tmp_path / "c.pth"
    save_checkpoint(state, path)
    loaded = load_checkpoint(path)
    torch.testing.assert_close(loaded["student"]["w"], state["student"]["w"])
    assert loaded["epoch"] == 3
    data = bytearray(path.read_bytes())
    offset = data.find(state["student"]["w"].numpy().tobytes()[:64])
    data[offset + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="differs from the digest"):
        load_checkpoint(path)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(path)


class _Bomb:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "bomb.pth"
    torch.save({"student": _Bomb()}, path)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(path)


def test_ablation_run_names():
    assert Ablation().run_name() == "SSS"
    assert Ablation(supervised_only=True).run_name() == "SSS-supervised"
    assert Ablation(use_dfe=False, pcsw_tau=0.6).run_name() == "SSS-noDFE-tau0.6"
    assert Ablation(use_pcsw=False, refine=False).run_name() == "SSS-noPCSW-noRefine"
    assert Ablation(strong_views=1).run_name() == "SSS-views1"
    assert Ablation(dfe_inputs="weak_strong").run_name() == "SSS-dfeWeakStrong"
    assert Ablation(use_dfe=False, dfe_inputs="weak_strong").run_name() == "SSS-noDFE"  # no DFE: the mode is moot


def test_train_config_overrides_are_checked_with_the_whole_plan_and_epochs_replace_the_warmup_share(prepared):
    from sss_auto.dataset.raw import find_dataset
    from sss_auto.errors import SSSError
    from sss_auto.training.options import make_train_config
    from sss_auto import paths

    dataset = find_dataset("DemoBHSD", paths.root("raw"))
    planned = make_train_config(dataset, "2d", "0")
    assert planned.training.warmup_fraction == 0.4 and planned.training.confidence_mode == "class_adaptive"
    explicit = make_train_config(dataset, "2d", "0", overrides={"warmup_epochs": 3})
    assert explicit.training.warmup_fraction is None and explicit.training.warmup_epochs == 3
    with pytest.raises(SSSError, match="--unlabeled-weight: 1.5 must be >= 0 and <= 1"):
        make_train_config(dataset, "2d", "0", overrides={"unlabeled_weight": 1.5})
    with pytest.raises(SSSError, match="^--epochs: 0 must be >= 1$"):
        make_train_config(dataset, "2d", "0", overrides={"num_epochs": 0})
    with pytest.raises(SSSError, match="^--lr: 0 must be > 0$"):
        make_train_config(dataset, "2d", "0", overrides={"learning_rate": 0})
    with pytest.raises(SSSError, match="confidence_mode: 'bogus' is not one of global, class_adaptive"):
        make_train_config(dataset, "2d", "0", overrides={"confidence_mode": "bogus"})
    with pytest.raises(SSSError, match="--dfe-inputs must be one of strong_pair, weak_strong"):
        make_train_config(dataset, "2d", "0", ablation=Ablation(dfe_inputs="bogus"))
    assert make_train_config(dataset, "2d_memory", "0").ablation.strong_views == Ablation.strong_views
    with pytest.raises(SSSError, match="--strong-views applies to slices only: 2d_memory trains one strong clip"):
        make_train_config(dataset, "2d_memory", "0", ablation=Ablation(strong_views=1))
    with pytest.raises(SSSError, match="--dfe-inputs weak_strong applies to slices only"):
        make_train_config(dataset, "2d_memory", "0", ablation=Ablation(dfe_inputs="weak_strong"))
    assert make_train_config(dataset, "2d", "0", overrides={"cutmix_source": "bidirectional"}).ablation.strong_views == 2
    with pytest.raises(SSSError, match="bidirectional pastes one way in each of the 2 strong views; with --strong-views 1"):
        make_train_config(dataset, "2d", "0", overrides={"cutmix_source": "bidirectional"},
                          ablation=Ablation(strong_views=1))


def test_resolve_is_the_one_route_and_the_saved_config_reloads_as_resolved(prepared):
    from dataclasses import replace

    from planners.plans import load_plans
    from sss_auto import paths
    from sss_auto.configuration import TrainConfig, train_config_from_json
    from sss_auto.dataset.raw import find_dataset
    from sss_auto.io.serialization import SchemaError, to_dict
    from sss_auto.stages import preprocessed_folder
    from sss_auto.training.options import resolve

    dataset = find_dataset("DemoBHSD", paths.root("raw"))
    plans = load_plans(preprocessed_folder(dataset) / "plans.json")
    config = resolve(plans, dataset.name, "2d", "0", overrides={"learning_rate": 0.003}, batch_size=3,
                     ablation=Ablation(use_dfe=False))
    assert config.plan.training.learning_rate == 0.003 and config.plan.batch_size_labeled == 3
    assert config.plans.configuration("2d") is config.plan, "the plans the run holds carry its overrides"
    assert config.plans.labels == plans.labels and config.plans.resampling == plans.resampling
    assert config.model.dfe_levels == () and config.inference.batch_size == 3
    saved = json.loads(json.dumps(to_dict(config)))
    again = train_config_from_json(saved, plans)
    assert again == config and again.model == config.model and again.inference == config.inference
    legacy = {k: v for k, v in saved.items() if k != "plans"}  # training_config.json before it held the whole plans
    legacy["plan"] = saved["plans"]["configurations"]["2d"]
    old = train_config_from_json(legacy, replace(plans, configurations={}))
    assert old.plan == config.plan and old.plans.labels == plans.labels and old.model == config.model
    with pytest.raises(SchemaError, match="training_config.plans.configurations.2d.training.learning_rate"):
        bad = json.loads(json.dumps(saved))
        bad["plans"]["configurations"]["2d"]["training"]["learning_rate"] = "fast"
        train_config_from_json(bad, plans)
    assert isinstance(again, TrainConfig)
    from sss_auto.inference.models import _preprocessing

    other_schedule = resolve(plans, dataset.name, "2d", "1", overrides={"learning_rate": 0.01}, batch_size=2)
    assert _preprocessing(other_schedule) == _preprocessing(config), "folds may differ in their schedule"
    other_patch = replace(config, plans=replace(plans, configurations={"2d": replace(config.plan, patch_size=(32, 32))}))
    assert _preprocessing(other_patch) != _preprocessing(config), "not in what prediction feeds the networks"


def test_strong_view_keeps_geometry_when_no_box_is_drawn():
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, 2:4, 2:4] = 5.0
    view = StrongView(x, torch.zeros(2, 8, 8, dtype=torch.bool), torch.tensor([1, 0]))
    labels, confidence = view.mix_targets(torch.ones(2, 8, 8), torch.full((2, 8, 8), 0.5))
    assert torch.equal(labels, torch.ones(2, 8, 8)) and torch.equal(confidence, torch.full((2, 8, 8), 0.5))


def test_ablation_switches_change_what_is_built_and_how_inference_runs(dataset_dir):
    from dataclasses import replace

    from planners.fingerprint import extract_fingerprint
    from planners.planner import plan
    from planners.target import PlanTarget
    from sss_auto.configuration import TrainConfig
    from sss_auto.dataset.raw import load_dataset

    plans = plan(extract_fingerprint(load_dataset(dataset_dir), 1, False), PlanTarget("cpu", 8.0), "test")
    plans = replace(plans, configurations={"2d": replace(plans.configuration("2d"), dfe_levels=(1, 2), refine=True)})
    full = TrainConfig(dataset="D", configuration="2d", fold="0", plans=plans)
    classes = max(plans.labels.values()) + 1
    assert (full.model.in_channels, full.model.num_classes) == (len(plans.channel_names), classes)
    assert full.model.dfe_levels == (1, 2) and full.model.refine
    assert full.model.image_size == plans.configuration("2d").patch_size[0]
    assert full.inference.use_prompts and full.inference.pcsw_tau == 0.8 and full.inference.patch == full.model.image_size
    assert replace(full, ablation=Ablation(use_dfe=False)).model.dfe_levels == ()
    assert replace(full, ablation=Ablation(supervised_only=True)).model.dfe_levels == ()
    assert not replace(full, ablation=Ablation(refine=False)).model.refine
    assert not replace(full, ablation=Ablation(use_pcsw=False)).inference.use_prompts
    assert replace(full, ablation=Ablation(pcsw_tau=0.6)).inference.pcsw_tau == 0.6
    assert full.class_names == {v: k for k, v in plans.labels.items()}


def test_train_config_refuses_weights_the_plan_was_not_made_for_and_epochs_replace_a_planned_budget(prepared, roots):
    from sss_auto import paths
    from sss_auto.dataset.raw import find_dataset
    from sss_auto.errors import SSSError
    from sss_auto.io.atomic import read_json, write_json_atomic
    from sss_auto.training.options import make_train_config

    dataset = find_dataset("DemoBHSD", paths.root("raw"))
    plans_path = roots["preprocessed"] / "Dataset900_DemoBHSD" / "plans.json"
    plans = read_json(plans_path)
    assert plans["configurations"]["2d"]["pretrained"] is False
    weights = roots["sam2"] / "sam2.1_hiera_tiny.pt"
    weights.write_bytes(b"x")
    with pytest.raises(SSSError, match="made for training from scratch .* re-plan for them with sss_plan -d Dataset900"):
        make_train_config(dataset, "2d", "0", sam2_checkpoint=weights)
    plans["configurations"]["2d"].update(sam2_variant="tiny", pretrained=True, sam2_checkpoint=str(weights))
    write_json_atomic(plans, plans_path)
    assert make_train_config(dataset, "2d", "0").sam2_checkpoint == weights, "the plan's checkpoint is used"
    weights.unlink()
    with pytest.raises(SSSError, match="made for pretrained SAM-2 tiny weights .* sss_download_sam2 --variant tiny"):
        make_train_config(dataset, "2d", "0")
    plans["configurations"]["2d"].update(sam2_variant="test", pretrained=False, sam2_checkpoint=None)
    plans["configurations"]["2d"]["training"]["time_budget_min"] = 60.0
    write_json_atomic(plans, plans_path)
    assert make_train_config(dataset, "2d", "0").training.time_budget_min == 60.0
    assert make_train_config(dataset, "2d", "0", overrides={"num_epochs": 3}).training.time_budget_min is None
    both = make_train_config(dataset, "2d", "0", overrides={"num_epochs": 3, "time_budget_min": 2.0})
    assert both.training.time_budget_min == 2.0


def test_strong_labeled_augmentation_jitters_intensities_reproducibly_and_standard_leaves_them():
    from sss_auto.data.strong import augment_labeled

    x = torch.linspace(-2, 2, 2 * 1 * 16 * 16).reshape(2, 1, 16, 16)
    y = torch.zeros(2, 16, 16, dtype=torch.long)
    assert augment_labeled(x, y, "standard", torch.Generator().manual_seed(0)) == (x, y)
    strong, same = augment_labeled(x, y, "strong", torch.Generator().manual_seed(0))
    assert strong.shape == x.shape and not torch.equal(strong, x) and same is y
    assert torch.equal(strong, augment_labeled(x, y, "strong", torch.Generator().manual_seed(0))[0]), "seeded"
    with pytest.raises(ValueError, match="not one of standard, strong, copy_paste"):
        augment_labeled(x, y, "heavy", torch.Generator())


def test_copy_paste_labeled_augmentation_pastes_boxes_of_other_labeled_slices_with_their_labels():
    from sss_auto.data.strong import augment_labeled

    x = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 16, 16).contiguous()
    y = torch.arange(6).view(6, 1, 1).expand(6, 16, 16).contiguous()
    mixed_x, mixed_y = augment_labeled(x, y, "copy_paste", torch.Generator().manual_seed(2))
    assert torch.equal(mixed_x[:, 0].long(), mixed_y), "every pixel keeps its own slice's label"
    assert not torch.equal(mixed_y, y), "seed 2 pastes at least one box"
    for b in range(6):
        assert set(mixed_y[b].unique().tolist()) <= {b} | set(range(6)) and bool((mixed_y[b] == b).any())
        assert len(mixed_y[b].unique()) <= 2, "at most one partner per slice"
    with pytest.raises(ValueError, match="clips are not mixed"):
        augment_labeled(x.view(3, 2, 1, 16, 16), y.view(3, 2, 16, 16), "copy_paste", torch.Generator())
