"""Step time of the SSS trainer vs the supervised-only ablation with the same model, and where time goes.

Usage (after sss_plan_and_preprocess of the demo dataset; SSS_* variables set):
    python benchmarks/train_step_time.py -d DemoBHSD [--batch 4] [--steps 10] [--threads 2] [--device cuda]
    [--supervised-batch 8] [--strong-views 1] [--no-dfe] [--no-refine] [--dfe-levels 2]
    (the trainer's ablations, to measure what each part of the step costs)

Batches come from the real loader code (in this process, timed separately); the model, steps,
optimizer and EMA are the trainer's. Forward time is attributed to modules with forward hooks
(student/teacher encoder, SAM-2 refiner, DFE, coarse head); "backward + optimizer" is the rest of
the step. PCSW is timed on the whole unlabeled pool (one bank refresh) and amortised over the plan's
refresh interval. On CUDA the steps run under the trainer's bf16 autocast and every timer waits for
the GPU (torch.cuda.synchronize), which itself costs a little. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import replace

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-d", default="DemoBHSD")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--supervised-batch", type=int, default=None,
                        help="labeled batch of the supervised run (default: --batch; 2x --batch compares equal images per step)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--strong-views", type=int, choices=[1, 2], default=2, help="strong views per unlabeled image")
    parser.add_argument("--no-dfe", action="store_true", help="the trainer's no-DFE ablation (both steps)")
    parser.add_argument("--no-refine", action="store_true", help="the trainer's no-refinement ablation (both steps)")
    parser.add_argument("--dfe-levels", type=int, nargs="+", choices=[0, 1, 2], default=None,
                        help="DFE feature levels instead of the plan's (1 = stride 8, 2 = stride 16)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from planners.plans import load_plans
    from sss_auto import paths
    from sss_auto.data import augment
    from sss_auto.data.cache import CaseCache
    from sss_auto.data.loader import LoaderSpec, make_batch
    from sss_auto.data.strong import strong_view
    from sss_auto.dataset.raw import find_dataset
    from sss_auto.inference.settings import InferenceSettings
    from sss_auto.stages import preprocessed_folder
    from sss_auto.training.build import build_modules
    from sss_auto.configuration import Ablation, TrainConfig
    from sss_auto.training.ema import update_teacher
    from sss_auto.training.loop import mixed_precision
    from sss_auto.training.pcsw_bank import refresh_bank
    from sss_auto.method.steps import sss_step, supervised_step

    dataset = find_dataset(args.d, paths.raw_roots())
    folder = preprocessed_folder(dataset)
    plans = load_plans(folder / "plans.json")
    plan = replace(plans.configuration("2d"), batch_size_labeled=args.batch, batch_size_unlabeled=args.batch)
    if args.dfe_levels is not None:
        plan = replace(plan, dfe_levels=tuple(args.dfe_levels))
    cache = CaseCache(folder / "2d")
    num_classes = max(plans.labels.values()) + 1
    patch = plan.patch_size[0]

    device = args.device
    ablation = Ablation(use_dfe=not args.no_dfe, refine=not args.no_refine)
    config = TrainConfig(dataset=dataset.name, configuration="2d", fold="0", ablation=ablation, device=device,
                         plans=replace(plans, configurations={**plans.configurations, "2d": plan}))
    m = build_modules(config)
    settings = InferenceSettings(patch=patch, tta=False, batch_size=args.batch, device=device)
    unlabeled = cache.ids("unlabeled")
    started = time.perf_counter()
    bank = refresh_bank(m.teacher, cache, unlabeled, settings, {}, 0, progress=False)
    bank_s = time.perf_counter() - started

    spec = LoaderSpec(cache_folder=cache.folder, labeled_ids=tuple(cache.ids("labeled")), unlabeled_ids=tuple(unlabeled),
                      patch=patch, batch_labeled=args.batch, batch_unlabeled=args.batch, num_foreground=num_classes - 1)
    rng = np.random.default_rng(0)
    np.random.seed(0)
    transform = augment.spatial_and_intensity(patch)
    load_times, batches = [], []
    for _ in range(args.steps + 2):
        t0 = time.perf_counter()
        batches.append(make_batch(spec, cache, bank, rng, transform))
        load_times.append(time.perf_counter() - t0)
    supervised_spec = replace(spec, batch_labeled=args.supervised_batch or args.batch, batch_unlabeled=0)
    supervised_batches = [make_batch(supervised_spec, cache, bank, rng, transform) for _ in range(args.steps + 2)]

    batches = [b.to(device) for b in batches]
    supervised_batches = [b.to(device) for b in supervised_batches]
    timers: dict[str, float] = defaultdict(float)

    def now() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def hook_pair(name: str, module: torch.nn.Module) -> None:
        def pre(*_):
            timers[f"_start_{name}"] = now()

        def post(*_):
            timers[name] += now() - timers[f"_start_{name}"]

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    for owner, net in (("student", m.student), ("teacher", m.teacher)):
        hook_pair(f"{owner}.encoder (SAM-2 Hiera)", net.encoder)
        if net.refiner is not None:
            hook_pair(f"{owner}.refiner (SAM-2 prompt enc + mask dec)", net.refiner)
        hook_pair(f"{owner}.coarse_head", net.coarse_head)
    hook_pair("student.dfe", m.student.dfe)

    def run(kind: str) -> dict:
        timers.clear()
        generator = torch.Generator().manual_seed(0)
        times = []
        for index, b in enumerate(batches if kind == "sss" else supervised_batches):
            t0 = now()
            with mixed_precision(device):
                if kind == "sss":
                    out = sss_step(b, m.student, m.teacher, [strong_view(b.x_w, generator) for _ in range(args.strong_views)])
                else:
                    out = supervised_step(b, m.student)
            m.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in m.student.parameters() if p.requires_grad], 12.0)
            m.optimizer.step()
            if kind == "sss":
                update_teacher(m.teacher, m.student, 0.996)
            if index >= 2:  # warm-up steps are not counted
                times.append(now() - t0)
            else:
                timers.clear()
        step_s = float(np.mean(times))
        shares = {k: v / len(times) / step_s for k, v in timers.items() if not k.startswith("_")}
        shares["backward + optimizer + rest"] = 1 - sum(shares.values())
        return {"step_s": round(step_s, 3), "share_of_step": {k: round(v, 3) for k, v in shares.items()}}

    supervised, sss = run("supervised"), run("sss")
    refresh_every = plan.training.pcsw_refresh_epochs * plan.training.iterations_per_epoch
    print(json.dumps({
        "dataset": dataset.name, "variant": plan.sam2_variant, "patch": patch, "batch_labeled": args.batch,
        "batch_unlabeled": args.batch, "supervised_batch": args.supervised_batch or args.batch,
        "threads": args.threads, "steps": args.steps, "strong_views": args.strong_views,
        "dfe_levels": [] if args.no_dfe else list(plan.dfe_levels), "refine": not args.no_refine, "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "supervised": supervised, "sss": sss, "ratio_sss_over_supervised": round(sss["step_s"] / supervised["step_s"], 2),
        "data_loading_s_per_batch_one_process": round(float(np.mean(load_times)), 3),
        "pcsw_bank_refresh_s": round(bank_s, 2), "unlabeled_cases": len(unlabeled),
        "pcsw_amortised_s_per_step": round(bank_s / refresh_every, 4),
    }, indent=2))


if __name__ == "__main__":
    main()
