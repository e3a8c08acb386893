"""Semi-supervised benchmark: SSS and its ablations vs supervised-only vs nnU-Net v2, scored on a held-out test set.

One command (SSS_* are set by the script; nothing of the caller's is touched):

    python benchmarks/ssl_benchmark.py --out DIR [--seeds 0 1 2] [--budget-min 5] [--variants ...]
        [--nnunet-bin /path/to/nnunet-venv/bin] [--labeled 4] [--val 2] [--unlabeled 40] [--test 20]
        [--rare-class 0.4] [--heterogeneity 0] [--equal-iterations] [--device cpu] [--smoke]

Data: the demo generator (`sss_auto.dataset.demo`) with the rare small class EDH, generated once: a
pool of labeled candidates, `--unlabeled` unlabeled volumes and `--test` labeled test volumes. The
test volumes are used only for scoring: nothing trains, validates or selects on them (every run is
scored with its *final* checkpoint). Per seed, `--labeled` training cases (every class present at
least once) and `--val` monitoring cases are drawn from the pool; the seed also seeds the model,
data order and strong views. Each seed gets its own raw dataset (links to the pool's files), so the
fingerprint (PCSW's constraints, the class prior) sees only that seed's labeled cases. The
`supervised_oracle` variant trains on every labeled pool case but the seed's monitoring ones (its
own raw dataset, seed_N_oracle): the most that labels for the unlabeled pool could buy, the ceiling
of every semi-supervised variant in the same budget.

Runs: every variant trains fold 0 of that seed's split with `sss_train --time-budget` (equal
wall-clock by construction; the wall time, epochs and iterations actually used are recorded), or
with `--equal-iterations`, the iterations of the slowest variant's budget run. nnU-Net v2 (its own
venv, `--nnunet-bin`) trains on the same labeled cases for the epochs that a calibration epoch says
fit the same budget, and predicts the same test cases; every prediction is scored by this project's
evaluator. Results go to DIR/results.json (every run), DIR/summary.md (tables: mean ± sd over seeds;
paired differences against supervised and weak-to-strong with the 95 % t-interval of the mean
difference and the number of seeds where the variant scored higher) and DIR/dice.png.
A finished run is not run again when the command is repeated (its record is reused).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.stats import t as student_t

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sss_auto.dataset.demo import DemoSpec, make_demo_dataset  # noqa: E402
from sss_auto.evaluation.evaluate import evaluate_folders  # noqa: E402
from sss_auto.io.atomic import read_json, write_json_atomic  # noqa: E402

DATASET_ID, DATASET_NAME = 950, "SSLBench"
DATASET_FOLDER = f"Dataset{DATASET_ID}_{DATASET_NAME}"
POOL_LABELED = 16


@dataclass(frozen=True)
class Variant:
    """One training recipe: the sss_train switches and the run folder name they produce."""

    name: str
    flags: tuple[str, ...]
    run: str
    label: str
    oracle: bool = False  # trains on every labeled pool case but the monitoring ones (the ceiling of the labels)
    configuration: str = "2d"  # or "2d_memory" (clips through SAM-2's memory; one clip = the 2d batch's slices)

    @property
    def supervised_only(self) -> bool:
        """No unlabeled stream, hence no EMA teacher to score."""
        return "--supervised-only" in self.flags


SSS_METHOD_PSEUDO_LABELS = ("--confidence-mode", "global", "--alignment", "none", "--no-ema-restart",
                            "--unlabeled-weight", "0.5", "--warmup-epochs", "8")  # the first SSS_METHOD reading
AFTER_WARMUP = ("--ssl-start", "warmup")
ONE_CLIP = ("--batch-size", "1")  # after --train-flags: one clip of the plan's length per stream (the CPU plan's 2d_memory)  # SSL right after the warm-up, as every variant measured before the start gate
VARIANTS = {v.name: v for v in (
    Variant("supervised", ("--supervised-only",), "SSS-supervised", "supervised only (full network)"),
    Variant("supervised_coarse", ("--supervised-only", "--no-pcsw", "--no-refine"), "SSS-supervised-noPCSW-noRefine",
            "supervised only, coarse head (no PCSW, no refinement)"),
    Variant("supervised_oracle", ("--supervised-only", "--no-pcsw", "--no-refine"), "SSS-supervised-noPCSW-noRefine",
            f"oracle: supervised coarse head on {POOL_LABELED} labeled cases less the monitoring ones", oracle=True),
    Variant("w2s", ("--no-dfe", "--no-pcsw", "--no-refine", *AFTER_WARMUP), "SSS-noDFE-noPCSW-noRefine",
            "weak-to-strong, coarse head, SSL from the end of the warm-up"),
    Variant("w2s_ready", ("--no-dfe", "--no-pcsw", "--no-refine", "--ssl-start", "ready"), "SSS-noDFE-noPCSW-noRefine",
            "weak-to-strong, coarse head, SSL once every labeled class is learned (the from-scratch default)"),
    Variant("st", ("--no-dfe", "--no-pcsw", "--no-refine", "--unlabeled-training", "self_training", "--unlabeled-weight",
                   "0.5", "--unready-gate", *AFTER_WARMUP), "SSS-noDFE-noPCSW-noRefine",
            "offline self-training, coarse head: the pool pseudo-labelled once (TTA) at the end of the warm-up, "
            "w_u 1/2, unready classes ignored"),
    Variant("st_ready", ("--no-dfe", "--no-pcsw", "--no-refine", "--unlabeled-training", "self_training",
                         "--unlabeled-weight", "0.5", "--ssl-start", "ready"), "SSS-noDFE-noPCSW-noRefine",
            "offline self-training, coarse head, once every labeled class is learned, w_u 1/2"),
    Variant("w2s_dfe_pair", ("--no-pcsw", "--no-refine", "--dfe-inputs", "strong_pair", *AFTER_WARMUP),
            "SSS-noPCSW-noRefine-dfeStrongPair", "weak-to-strong + DFE (strong pair)"),
    Variant("w2s_dfe_weak", ("--no-pcsw", "--no-refine", "--dfe-inputs", "weak_strong", *AFTER_WARMUP),
            "SSS-noPCSW-noRefine-dfeWeakStrong", "weak-to-strong + DFE (weak/strong)"),
    Variant("w2s_pcsw", ("--no-dfe", *AFTER_WARMUP), "SSS-noDFE", "weak-to-strong + PCSW + refinement"),
    Variant("w2s_pcsw_refresh3", ("--no-dfe", "--pcsw-refresh-epochs", "3", *AFTER_WARMUP), "SSS-noDFE",
            "weak-to-strong + PCSW + refinement, full bank refresh every 3 epochs"),
    Variant("w2s_pcsw_rolling3", ("--no-dfe", "--pcsw-refresh-epochs", "3", "--pcsw-refresh-fraction", "0.1",
                                  *AFTER_WARMUP), "SSS-noDFE",
            "weak-to-strong + PCSW + refinement, rolling bank refresh (a tenth of the pool every 3 epochs)"),
    Variant("sss_v0", ("--dfe-inputs", "weak_strong", *SSS_METHOD_PSEUDO_LABELS, *AFTER_WARMUP), "SSS-dfeWeakStrong",
            "full SSS as first specified (weak/strong DFE, global tau 0.95, no alignment, w_u 1/2, 8 warm-up epochs)"),
    Variant("sss_full", AFTER_WARMUP, "SSS", "full SSS (strong-pair DFE, PCSW, refinement, class-aware pseudo labels; "
            "the plans' default with weights)"),
    Variant("w2s_v0", ("--no-dfe", "--no-pcsw", "--no-refine", *SSS_METHOD_PSEUDO_LABELS, *AFTER_WARMUP),
            "SSS-noDFE-noPCSW-noRefine",
            "weak-to-strong as first specified (global tau 0.95, no alignment, w_u 1/2, 8 warm-up epochs)"),
    Variant("memory_supervised_coarse", ("--supervised-only", "--no-pcsw", "--no-refine", *ONE_CLIP),
            "SSS-supervised-noPCSW-noRefine", "2d_memory: supervised only, coarse head, propagated through memory",
            configuration="2d_memory"),
    Variant("memory_supervised_coarse_nogate", ("--supervised-only", "--no-pcsw", "--no-refine", "--no-memory-gate",
                                                *ONE_CLIP), "SSS-supervised-noPCSW-noRefine-noMemoryGate",
            "2d_memory: supervised only, coarse head, memory attention without its gate (SAM-2's)",
            configuration="2d_memory"),
    Variant("memory_w2s_ready", ("--no-dfe", "--no-pcsw", "--no-refine", "--ssl-start", "ready", *ONE_CLIP),
            "SSS-noDFE-noPCSW-noRefine", "2d_memory: weak-to-strong on clips, coarse head, the ready gate",
            configuration="2d_memory"),
)}
DEFAULT_VARIANTS = ("supervised", "supervised_coarse", "w2s", "w2s_ready", "w2s_dfe_pair", "w2s_dfe_weak", "w2s_pcsw",
                    "sss_v0", "sss_full")
NNUNET = "nnunet"
TRAINER = "nnUNetTrainer_SSSBudget"
TRAINER_SOURCE = f'''import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class {TRAINER}(nnUNetTrainer):
    """Benchmark only: nnU-Net's trainer with the epochs and iterations the benchmark sets (equal budget)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ["SSS_BENCH_EPOCHS"])
        self.num_iterations_per_epoch = int(os.environ["SSS_BENCH_ITERATIONS"])
        self.num_val_iterations_per_epoch = max(1, self.num_iterations_per_epoch // 5)
'''


def _run(command: list[str], env: dict, log: Path) -> float:
    """Run a command with its output in `log`; returns the wall time; exits with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        result = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed (exit {result.returncode}); log {log}:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def pool_spec(args: argparse.Namespace) -> DemoSpec:
    """The demo generator's spec of the benchmark's pool (labeled pool, unlabeled volumes, test set)."""
    return DemoSpec(n_labeled=POOL_LABELED, n_unlabeled=args.unlabeled, n_test=args.test, shape=tuple(args.shape),
                    seed=args.data_seed, rare_class_probability=args.rare_class, heterogeneity=args.heterogeneity,
                    name=DATASET_NAME)


def predictions_folder(root: Path, name: str, tag: str) -> Path:
    """Where a seed's run of variant `name` under schedule `tag` keeps its test predictions."""
    return root / "predictions" / f"{name}_{tag}"


def make_pool(out: Path, args: argparse.Namespace) -> Path:
    """Generate (once) the labeled pool, the unlabeled volumes and the test set."""
    pool = out / "pool" / DATASET_FOLDER
    if not (pool / "dataset.json").is_file():
        make_demo_dataset(pool, pool_spec(args))
    return pool


def _classes_of(label_path: Path) -> set[int]:
    from sss_auto.io.nifti import read_image

    return {int(v) for v in np.unique(read_image(label_path)[0]) if v > 0}


def labeled_cases(pool: Path) -> list[str]:
    """The pool's labeled case ids, sorted."""
    return sorted(p.name[: -len(".nii.gz")] for p in (pool / "labelsTr").glob("*.nii.gz"))


def draw_split(pool: Path, seed: int, n_labeled: int, n_val: int) -> tuple[list[str], list[str]]:
    """Training cases that hold every foreground class at least once, and monitoring cases, from the pool."""
    cases = labeled_cases(pool)
    present = {c: _classes_of(pool / "labelsTr" / f"{c}.nii.gz") for c in cases}
    every = set().union(*present.values())
    rng = np.random.default_rng(seed)
    for _ in range(10_000):
        order = [str(c) for c in rng.permutation(cases)]
        train = sorted(order[:n_labeled])
        if set().union(*(present[c] for c in train)) == every:
            return train, sorted(order[n_labeled:n_labeled + n_val])
    raise SystemExit(f"no {n_labeled} pool cases hold every class {sorted(every)}; use more --labeled")


def oracle_split(pool: Path, val: list[str]) -> tuple[list[str], list[str]]:
    """Every labeled pool case but the seed's monitoring ones, and those: the oracle's split."""
    cases = labeled_cases(pool)
    return [c for c in cases if c not in val], val


def seed_dataset(pool: Path, root: Path, train: list[str], val: list[str]) -> Path:
    """The seed's raw dataset: its labeled cases, every unlabeled case (links into the pool)."""
    target = root / "SSS_raw" / DATASET_FOLDER
    if (target / "dataset.json").is_file():
        return target
    for folder in ("imagesTr", "labelsTr", "imagesUnlabeled"):
        (target / folder).mkdir(parents=True, exist_ok=True)
    for case in train + val:
        os.symlink(pool / "imagesTr" / f"{case}_0000.nii.gz", target / "imagesTr" / f"{case}_0000.nii.gz")
        os.symlink(pool / "labelsTr" / f"{case}.nii.gz", target / "labelsTr" / f"{case}.nii.gz")
    for image in sorted((pool / "imagesUnlabeled").glob("*.nii.gz")):
        os.symlink(image, target / "imagesUnlabeled" / image.name)
    meta = read_json(pool / "dataset.json")
    meta.update(numTraining=len(train + val))
    write_json_atomic(meta, target / "dataset.json")
    return target


def sss_env(root: Path, threads: int) -> dict:
    env = {**os.environ, "SSS_raw": str(root / "SSS_raw"), "SSS_preprocessed": str(root / "SSS_preprocessed"),
           "SSS_results": str(root / "SSS_results")}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def prepare_seed(root: Path, train: list[str], val: list[str], env: dict) -> None:
    """Plan and preprocess the seed's dataset (test SAM-2) and write its one-fold split."""
    splits = root / "SSS_preprocessed" / DATASET_FOLDER / "splits_final.json"
    if splits.is_file():
        return
    _run(["sss_plan_and_preprocess", "-d", DATASET_NAME, "--sam2-variant", "test", "--method", "full", "-np", "2", "--no-progress"], env,
         root / "logs" / "plan_and_preprocess.log")
    write_json_atomic([{"train": train, "val": val}], splits)


def train_and_score(variant: Variant, seed: int, root: Path, pool: Path, env: dict, args: argparse.Namespace,
                    schedule: list[str], tag: str) -> dict:
    """sss_train fold 0 with the variant's switches and `schedule`, then sss_predict the test set and score it."""
    cfg = variant.configuration
    results = root / "SSS_results" / DATASET_FOLDER / f"{variant.run}__{cfg}" / "fold_0"
    if (results / "checkpoint_final.pth").is_file() or (results / "checkpoint_latest.pth").is_file():
        shutil.rmtree(results.parent)  # a run of another schedule (or an interrupted one): start over
    command = ["sss_train", DATASET_NAME, cfg, "0", "--seed", str(seed), "--device", args.device, "--no-progress",
               "--num-workers", "1", "--disable-val-tta", *args.train_flags, *schedule, *variant.flags]
    wall_s = _run(command, env, root / "logs" / f"train_{variant.name}_{tag}.log")
    summary = read_json(results / "training_summary.json")
    predictions = predictions_folder(root, variant.name, tag)
    shutil.rmtree(predictions, ignore_errors=True)
    predict_s = _run(["sss_predict", "-i", str(pool / "imagesTs"), "-o", str(predictions), "-d", DATASET_NAME, "-c", cfg,
                      "-f", "0", "--run", variant.run, "--checkpoint", "final", "--disable-tta", "--device", args.device,
                      "-np", "1", "--no-progress"], env, root / "logs" / f"predict_{variant.name}_{tag}.log")
    plans = read_json(root / "SSS_preprocessed" / DATASET_FOLDER / "plans.json")["configurations"][cfg]
    config = read_json(results / "training_config.json")
    trained = config["plans"]["configurations"][cfg] if "plans" in config else config["plan"]  # the plan with its overrides
    extra = {}
    if args.score_teacher and not variant.supervised_only:
        teacher = predictions_folder(root, variant.name, f"{tag}_teacher")
        shutil.rmtree(teacher, ignore_errors=True)
        _run(["sss_predict", "-i", str(pool / "imagesTs"), "-o", str(teacher), "-d", DATASET_NAME, "-c", cfg, "-f", "0",
              "--run", variant.run, "--checkpoint", "final", "--weights", "teacher", "--disable-tta", "--device",
              args.device, "-np", "1", "--no-progress"], env, root / "logs" / f"predict_{variant.name}_{tag}_teacher.log")
        extra["teacher_scores"] = score(pool, teacher)
    return {**extra, "variant": variant.name, "seed": seed, "schedule": tag, "train_wall_s": round(wall_s, 1),
            "predict_wall_s": round(predict_s, 1), "epochs": summary["epochs"], "iterations": summary["iterations"],
            "bank_refreshes": summary.get("pcsw_bank_refreshes"),
            "plan": {"configuration": cfg, "clip_length": trained.get("clip_length", 0),
                     "patch": plans["patch_size"], "batch_labeled": trained["batch_size_labeled"],
                     "batch_unlabeled": 0 if variant.supervised_only else trained["batch_size_unlabeled"],
                     "sam2_variant": plans["sam2_variant"], "training": trained["training"]},
            "command": " ".join(command), "scores": score(pool, predictions)}


def score(pool: Path, predictions: Path) -> dict:
    """Mean and per-class Dice and HD95 of the test predictions (this project's evaluator, nnU-Net's conventions)."""
    meta = read_json(pool / "dataset.json")
    classes = sorted(v for v in meta["labels"].values() if v > 0)
    summary = evaluate_folders(pool / "labelsTs", predictions, classes, progress=False)
    return {"n_cases": summary["n_cases"], "dice": summary["mean"]["dice"], "hd95_mm": summary["mean"]["hd95_mm"],
            "dice_per_class": {k: v["dice"] for k, v in summary["mean_per_class"].items()},
            "hd95_per_class": {k: v["hd95_mm"] for k, v in summary["mean_per_class"].items()},
            "components_per_class": components_per_class(predictions, classes),
            "reference_components_per_class": components_per_class(pool / "labelsTs", classes)}


def components_per_class(folder: Path, classes: list[int]) -> dict[str, float]:
    """Mean number of 3D connected components (6-connected) per class over the cases of a folder of label maps:
    the inter-slice consistency of a prediction, to compare with the reference's."""
    counts = {k: [] for k in classes}
    for path in sorted(folder.glob("*.nii.gz")):
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        for k in classes:
            counts[k].append(ndimage.label(labels == k)[1])
    return {str(k): float(np.mean(v)) if v else float("nan") for k, v in counts.items()}


def nnunet_epochs_for(budget_s: float, out: Path, pool: Path, args: argparse.Namespace) -> int:
    """nnU-Net epochs of `--nnunet-iterations` that fit `budget_s`, from a 2-epoch calibration run (made once)."""
    calibration = read_json(_nnunet_calibrate(out, pool, args))
    return max(1, int((budget_s - calibration["overhead_s"]) // calibration["epoch_s"]))


def _nnunet_calibrate(out: Path, pool: Path, args: argparse.Namespace) -> Path:
    record = out / "nnunet_calibration.json"
    if record.is_file():
        return record
    root = out / "nnunet_calibration"
    train, val = draw_split(pool, args.seeds[0], args.labeled, args.val)
    seed_dataset(pool, root, train, val)
    env = _nnunet_env(root, args, epochs=2)
    _nnunet_prepare(root, train, val, env, args.nnunet_bin)
    log = root / "logs" / "train.log"
    wall_s = _run([str(args.nnunet_bin / "nnUNetv2_train"), str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device",
                   args.device], env, log)
    epoch_times = [float(t) for t in re.findall(r"Epoch time: ([\d.]+) s", log.read_text())]
    epoch_s = float(np.mean(epoch_times[1:] or epoch_times))  # the first epoch includes start-up
    write_json_atomic({"epoch_s": epoch_s, "epoch_times_s": epoch_times, "iterations": args.nnunet_iterations,
                       "overhead_s": wall_s - sum(epoch_times)}, record)
    return record


def _nnunet_env(root: Path, args: argparse.Namespace, epochs: int) -> dict:
    """nnU-Net's folders for one seed, and the benchmark trainer found through nnUNet_extTrainer (the venv is untouched)."""
    trainer_folder = args.out.resolve() / "nnunet_trainer"
    trainer_folder.mkdir(parents=True, exist_ok=True)
    if not (trainer_folder / f"{TRAINER}.py").is_file() or (trainer_folder / f"{TRAINER}.py").read_text() != TRAINER_SOURCE:
        (trainer_folder / f"{TRAINER}.py").write_text(TRAINER_SOURCE)
    env = {**os.environ, "nnUNet_raw": str(root / "SSS_raw"), "nnUNet_preprocessed": str(root / "nnUNet_preprocessed"),
           "nnUNet_results": str(root / "nnUNet_results"), "nnUNet_n_proc_DA": "1", "SSS_BENCH_EPOCHS": str(epochs),
           "SSS_BENCH_ITERATIONS": str(args.nnunet_iterations), "nnUNet_extTrainer": str(trainer_folder)}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    return env


def _nnunet_prepare(root: Path, train: list[str], val: list[str], env: dict, nnunet_bin: Path) -> None:
    """nnUNetv2_plan_and_preprocess -c 2d on the seed's raw dataset (nnU-Net ignores imagesUnlabeled), same split."""
    splits = root / "nnUNet_preprocessed" / DATASET_FOLDER / "splits_final.json"
    if splits.is_file():
        return
    _run([str(nnunet_bin / "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "2d", "-np", "2"], env,
         root / "logs" / "nnunet_plan_and_preprocess.log")
    write_json_atomic([{"train": train, "val": val}], splits)


def nnunet_run(seed: int, root: Path, pool: Path, args: argparse.Namespace, epochs: int, tag: str,
               split: tuple[list[str], list[str]]) -> dict:
    """Train nnU-Net 2d fold 0 on the seed's labeled cases for `epochs`, predict the test set, score it."""
    env = _nnunet_env(root, args, epochs)
    _nnunet_prepare(root, *split, env, args.nnunet_bin)
    results = root / "nnUNet_results"
    shutil.rmtree(results, ignore_errors=True)
    train_log = root / "logs" / f"train_nnunet_{tag}.log"
    wall_s = _run([str(args.nnunet_bin / "nnUNetv2_train"), str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device",
                   args.device], env, train_log)
    predictions = predictions_folder(root, "nnunet", tag)
    shutil.rmtree(predictions, ignore_errors=True)
    predict_s = _run([str(args.nnunet_bin / "nnUNetv2_predict"), "-i", str(pool / "imagesTs"), "-o", str(predictions),
                      "-d", str(DATASET_ID), "-c", "2d", "-f", "0", "-tr", TRAINER, "-chk", "checkpoint_final.pth",
                      "--disable_tta", "-device", args.device, "-npp", "1", "-nps", "1"], env,
                     root / "logs" / f"predict_nnunet_{tag}.log")
    plans = read_json(root / "nnUNet_preprocessed" / DATASET_FOLDER / "nnUNetPlans.json")["configurations"]["2d"]
    return {"variant": NNUNET, "seed": seed, "schedule": tag, "train_wall_s": round(wall_s, 1),
            "predict_wall_s": round(predict_s, 1), "epochs": epochs, "iterations": epochs * args.nnunet_iterations,
            "plan": {"patch": plans["patch_size"], "batch_labeled": plans["batch_size"], "batch_unlabeled": 0,
                     "network": plans.get("network_arch_class_name", "PlainConvUNet")},
            "command": f"nnUNetv2_train {DATASET_ID} 2d 0 -tr {TRAINER} ({epochs} epochs x {args.nnunet_iterations} it.)",
            "scores": score(pool, predictions)}


def summarize(records: list[dict], pool: Path) -> tuple[str, dict]:
    """Markdown tables (mean ± sd over seeds; paired differences) and the numbers behind them."""
    names = {str(v): k for k, v in read_json(pool / "dataset.json")["labels"].items() if v > 0}
    labels = {**{v.name: v.label for v in VARIANTS.values()}, NNUNET: "nnU-Net v2 2d (labeled only)"}
    lines, numbers = [], {}
    for schedule in sorted({r["schedule"] for r in records}):
        rows = [r for r in records if r["schedule"] == schedule]
        order = [v for v in list(VARIANTS) + [NNUNET] if any(r["variant"] == v for r in rows)]
        lines += [f"### {describe(schedule)}", "", "| variant | seeds | mean Dice | " + " | ".join(names.values())
                  + " | mean HD95 (mm) | iterations | train wall (s) |",
                  "|---|---|---|" + "---|" * len(names) + "---|---|---|"]
        for variant in order:
            runs = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["seed"])
            stats = {"dice": _mean_sd([r["scores"]["dice"] for r in runs]),
                     "hd95_mm": _mean_sd([r["scores"]["hd95_mm"] for r in runs]),
                     "per_class": {k: _mean_sd([r["scores"]["dice_per_class"][k] for r in runs]) for k in names},
                     "seeds": [r["seed"] for r in runs]}
            numbers.setdefault(schedule, {})[variant] = stats
            lines.append(f"| {labels[variant]} | {len(runs)} | {_fmt(stats['dice'])} | "
                         + " | ".join(_fmt(stats["per_class"][k]) for k in names)
                         + f" | {_fmt(stats['hd95_mm'], 1)} | {_fmt(_mean_sd([r['iterations'] for r in runs]), 0)}"
                         f" | {_fmt(_mean_sd([r['train_wall_s'] for r in runs]), 0)} |")
        for reference in ("supervised", "supervised_coarse", "w2s"):
            if reference not in order:
                continue
            lines += ["", f"Paired difference against {labels[reference]} (same seed; mean ± sd over seeds, the 95 % "
                      "t-interval of the mean difference, and the seeds where the variant scored higher):", "",
                      "| variant | seeds | mean Dice | 95 % CI | higher in | " + " | ".join(names.values()) + " |",
                      "|---|---|---|---|---|" + "---|" * len(names)]
            base = {r["seed"]: r for r in rows if r["variant"] == reference}
            for variant in order:
                if variant == reference:
                    continue
                pairs = [(r, base[r["seed"]]) for r in rows if r["variant"] == variant and r["seed"] in base]
                if not pairs:
                    continue
                paired = paired_difference([a["scores"]["dice"] - b["scores"]["dice"] for a, b in pairs])
                numbers[schedule][variant].setdefault("paired", {})[reference] = paired
                per_class = [_mean_sd([a["scores"]["dice_per_class"][k] - b["scores"]["dice_per_class"][k]
                                       for a, b in pairs]) for k in names]
                interval = ("n/a" if math.isnan(paired["ci95"][0])
                            else f"[{paired['ci95'][0]:+.3f}, {paired['ci95'][1]:+.3f}]")
                lines.append(f"| {labels[variant]} | {paired['n']} | "
                             f"{_fmt((paired['mean'], paired['sd'], paired['n']), signed=True)} | {interval} | "
                             f"{paired['higher']}/{paired['n']} | " + " | ".join(_fmt(d, signed=True) for d in per_class) + " |")
        lines.append("")
    return "\n".join(lines), numbers


def describe(tag: str) -> str:
    """The heading of a schedule tag."""
    if tag.startswith("budget"):
        return f"Equal wall-clock: {tag[len('budget'):-len('min')]} min per training run"
    if tag == "equal_iterations":
        return "Equal iterations: every SSS variant trains for the iterations the slowest one made in its budget"
    return "Custom schedule (--schedule)"


def paired_difference(differences: list[float]) -> dict:
    """Per-seed differences (variant − reference): mean, sd, n, the 95 % Student-t interval of the mean
    (NaN below two seeds) and how many seeds are above zero."""
    mean, sd, n = _mean_sd(differences)
    half = float(student_t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": mean, "sd": sd, "n": n, "ci95": [mean - half, mean + half],
            "higher": sum(d > 0 for d in differences)}


def _mean_sd(values: list[float]) -> tuple[float, float, int]:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return (math.nan, math.nan, 0)
    return (float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan, len(finite))


def _fmt(stat: tuple[float, float, int], digits: int = 3, signed: bool = False) -> str:
    mean, sd, n = stat
    if math.isnan(mean):
        return "n/a"
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return text + (f" ± {sd:.{digits}f}" if not math.isnan(sd) else "")


def headline(numbers: dict, pool: Path, tag: str, caption: str) -> dict:
    """The table sss_demo shows (sss_auto/report/headline.py): the budget runs, mean ± sd over seeds."""
    names = {str(v): k for k, v in read_json(pool / "dataset.json")["labels"].items() if v > 0}
    labels = {**{v.name: v.label for v in VARIANTS.values()}, NNUNET: "nnU-Net v2 2d (labeled only)"}
    rows = [[labels[variant], len(stats["seeds"]), _fmt(stats["dice"]), *(_fmt(stats["per_class"][k]) for k in names)]
            for variant, stats in numbers[tag].items()]
    return {"caption": caption, "columns": ["variant", "seeds", "test mean Dice", *names.values()], "rows": rows}


def plot(numbers: dict, pool: Path, path: Path) -> None:
    """Grouped bars of per-class and mean Dice per variant, error bars = sd over seeds, one panel per schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {str(v): k for k, v in read_json(pool / "dataset.json")["labels"].items() if v > 0}
    fig, axes = plt.subplots(len(numbers), 1, figsize=(11, 4.5 * len(numbers)), squeeze=False)
    for ax, (schedule, variants) in zip(axes[:, 0], sorted(numbers.items())):
        groups = list(names.values()) + ["mean"]
        width = 0.8 / max(len(variants), 1)
        for index, (variant, stats) in enumerate(variants.items()):
            values = [stats["per_class"][k] for k in names] + [stats["dice"]]
            x = np.arange(len(groups)) + (index - (len(variants) - 1) / 2) * width
            ax.bar(x, [v[0] for v in values], width, yerr=[0 if math.isnan(v[1]) else v[1] for v in values],
                   capsize=2, label=f"{variant} (n={len(stats['seeds'])})")
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_ylim(0, 1)
        ax.set_ylabel("test Dice")
        ax.set_title(describe(schedule))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="work and result folder (reused when run again)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget-min", type=float, default=5.0, help="wall-clock budget of each training run (minutes)")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS) + [NNUNET],
                   help=f"default: {' '.join(DEFAULT_VARIANTS)} {NNUNET}; also: w2s_v0, supervised_oracle")
    p.add_argument("--dev-variant", action="append", default=[], metavar="NAME=BASE:FLAGS[@RUN]",
                   help="development only: a variant NAME = variant BASE with extra sss_train FLAGS (run folder RUN, "
                        "default BASE's: give it when the flags change the ablation switches)")
    p.add_argument("--equal-iterations", action="store_true",
                   help="also train every SSS variant for the iterations of the slowest variant's budget run")
    p.add_argument("--nnunet-bin", type=Path, help="bin folder of a venv with nnunetv2 (needed for the nnunet variant)")
    p.add_argument("--nnunet-iterations", type=int, default=50, help="nnU-Net iterations per epoch")
    p.add_argument("--labeled", type=int, default=4, help="labeled training cases per seed")
    p.add_argument("--val", type=int, default=2, help="labeled monitoring cases per seed (never used to select)")
    p.add_argument("--unlabeled", type=int, default=40)
    p.add_argument("--test", type=int, default=20)
    p.add_argument("--rare-class", type=float, default=0.4, help="share of cases with the small rare class EDH")
    p.add_argument("--heterogeneity", type=float, default=0.0,
                   help="how much cases differ in scanner and anatomy (demo generator, 0..1; 0: not at all)")
    p.add_argument("--shape", type=int, nargs=3, default=[20, 128, 128], help="nominal volume shape (z, y, x)")
    p.add_argument("--data-seed", type=int, default=2027, help="demo generator seed (2026 was used for development)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=0, help="OMP/MKL threads per run (0: torch's default)")
    p.add_argument("--schedule", default="", help="development only: sss_train schedule flags instead of the budget, "
                   "e.g. '--epochs 30 --iters-per-epoch 50' (runs tagged 'custom'; nnU-Net gets the budget)")
    p.add_argument("--train-flags", nargs=argparse.REMAINDER, default=[],
                   help="extra sss_train flags for every SSS variant (last option; e.g. --lr 1e-3 --batch-size 4)")
    p.add_argument("--score-teacher", action="store_true", help="also score the EMA teacher of every SSL run")
    p.add_argument("--export-headline", type=Path, metavar="JSON",
                   help="also write the budget runs' table for sss_demo (sss_auto/report/ssl_benchmark_headline.json)")
    p.add_argument("--smoke", action="store_true",
                   help="a seconds-long check of the whole benchmark: tiny data, 2 variants, 1 seed, 0.3-minute budget")
    return p


def smoke_sizes(args: argparse.Namespace) -> None:
    """With --smoke: one seed, two variants, a 0.3-minute budget and tiny data (args changed in place)."""
    if args.smoke:
        args.seeds, args.variants, args.budget_min = args.seeds[:1], ["supervised", "w2s"], 0.3
        args.labeled, args.val, args.unlabeled, args.test, args.shape = 3, 1, 3, 2, [8, 48, 48]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for spec in args.dev_variant:
        name, _, rest = spec.partition("=")
        base, _, flags = rest.partition(":")
        flags, _, run = flags.partition("@")
        VARIANTS[name] = Variant(name, VARIANTS[base].flags + tuple(flags.split()), run or VARIANTS[base].run, f"{name} (dev)",
                                 configuration=VARIANTS[base].configuration)
    unknown = sorted(set(args.variants) - set(VARIANTS) - {NNUNET})
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}, {NNUNET}")
    smoke_sizes(args)
    if NNUNET in args.variants and args.nnunet_bin is None:
        args.variants = [v for v in args.variants if v != NNUNET]
        print("no --nnunet-bin: the nnU-Net v2 reference is left out")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    pool = make_pool(out, args)
    results_path = out / "results.json"
    records = read_json(results_path)["runs"] if results_path.is_file() else []
    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
               "device": args.device, "threads": args.threads or "torch default"}
    budget_tag = f"budget{args.budget_min:g}min" if not args.schedule else "custom"
    schedule = ["--time-budget", f"{args.budget_min:g}"] if not args.schedule else args.schedule.split()

    def save() -> None:
        write_json_atomic({"machine": machine, "command": shlex.join(sys.argv), "runs": records}, results_path)

    def have(variant: str, seed: int, tag: str) -> bool:
        return any(r["variant"] == variant and r["seed"] == seed and r["schedule"] == tag for r in records)

    splits = {seed: draw_split(pool, seed, args.labeled, args.val) for seed in args.seeds}
    for seed in args.seeds:
        for name in args.variants:
            if have(name, seed, budget_tag):
                continue
            oracle = name != NNUNET and VARIANTS[name].oracle
            root = out / (f"seed_{seed}_oracle" if oracle else f"seed_{seed}")
            split = oracle_split(pool, splits[seed][1]) if oracle else splits[seed]
            seed_dataset(pool, root, *split)
            env = sss_env(root, args.threads)
            prepare_seed(root, *split, env)
            print(f"seed {seed}: {name} ({budget_tag})", flush=True)
            if name == NNUNET:
                epochs = nnunet_epochs_for(args.budget_min * 60, out, pool, args)
                records.append(nnunet_run(seed, root, pool, args, epochs, budget_tag, splits[seed]))
            else:
                records.append(train_and_score(VARIANTS[name], seed, root, pool, env, args, schedule, budget_tag))
            save()
    if args.equal_iterations:
        for seed in args.seeds:
            root, env = out / f"seed_{seed}", sss_env(out / f"seed_{seed}", args.threads)
            budget_runs = [r for r in records if r["seed"] == seed and r["schedule"] == budget_tag and r["variant"] != NNUNET]
            slowest = min(budget_runs, key=lambda r: r["iterations"])
            tag = "equal_iterations"
            for name in (v for v in args.variants if v != NNUNET and not VARIANTS[v].oracle):
                if have(name, seed, tag):
                    continue
                if name == slowest["variant"]:
                    records.append({**slowest, "schedule": tag})
                else:
                    print(f"seed {seed}: {name} ({tag})", flush=True)
                    schedule = ["--epochs", str(slowest["epochs"]), "--iters-per-epoch",
                                str(slowest["iterations"] // slowest["epochs"])]
                    records.append(train_and_score(VARIANTS[name], seed, root, pool, env, args, schedule, tag))
                records[-1]["slowest_variant"] = slowest["variant"]
                save()
    table, numbers = summarize(records, pool)
    header = (f"Machine: {machine['platform']}, {machine['cpus']} CPUs, device {args.device}, threads "
              f"{machine['threads']}. Data: demo generator seed {args.data_seed}, {args.labeled} labeled training + "
              f"{args.val} monitoring cases per seed, {args.unlabeled} unlabeled, {args.test} test cases, rare class "
              f"in {args.rare_class:.0%} of cases, heterogeneity {args.heterogeneity:g}. Seeds: see each row (all records in {results_path.name}).\n\n")
    (out / "summary.md").write_text(header + table)
    write_json_atomic({"machine": machine, "numbers": numbers}, out / "summary.json")
    plot(numbers, pool, out / "dice.png")
    if args.export_headline and budget_tag in numbers:
        seeds = sorted({s for stats in numbers[budget_tag].values() for s in stats["seeds"]})
        caption = (f"{describe(budget_tag)}; seeds {seeds}; {args.labeled} labeled + {args.unlabeled} unlabeled "
                   f"training cases, {args.test} test cases of the rare-class demo (data seed {args.data_seed}); "
                   f"{machine['cpus']}-CPU machine, device {args.device}; python benchmarks/ssl_benchmark.py "
                   f"(documentation/benchmarks.md)")
        write_json_atomic(headline(numbers, pool, budget_tag, caption), args.export_headline)
    print(header + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
