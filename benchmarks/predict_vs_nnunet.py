"""Prediction time per case: sss_predict (two-pass SSS) vs nnUNetv2_predict, TTA on and off, same cases and CPU.

Usage (SSS runs of the demo dataset trained first, SSS_* set):
    python benchmarks/predict_vs_nnunet.py --nnunet-bin /path/to/nnunet-venv/bin [--test 10] [-d DemoBHSD] [--fold 0]
        [--sss 2d:SSS --sss 2d_memory:SSS-supervised ...]

nnU-Net gets its own model: the demo dataset (same generator) is planned with `-c 2d` and trained
for 1 epoch of 2 iterations by a benchmark-only trainer subclass (weights do not change the
prediction time). Both predict the same N generated test images with one worker process each.
Each SSS run (`--sss CONFIGURATION:RUN`, default 2d:SSS) is used as trained; how often its second
pass ran (PCSW found prompts; for 2d_memory, the propagations and their start slices) is reported,
because pass 2 is skipped when no class gets a prompt. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sss_auto.dataset.demo import DemoSpec, make_demo_dataset

TRAINER = "nnUNetTrainer_SSSBenchmark"
TRAINER_SOURCE = f'''import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class {TRAINER}(nnUNetTrainer):
    """Benchmark only: one epoch of two iterations (prediction time does not depend on the weights)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1
'''


def _timed(command: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(command[:2])} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start, result.stdout + result.stderr


def _second_pass(log: str, cases: int) -> str:
    """How often pass 2 ran: fused two-pass (2d) or propagated through the slice memory (2d_memory)."""
    propagated = re.findall(r"propagation through the slice memory from slice\(s\) \[([^\]]*)\]", log)
    if propagated:
        starts = sum(len(found.split(",")) for found in propagated)
        return f"propagated in {len(propagated)} of {cases} cases, {starts / cases:.1f} start slices per case"
    return f"pass 2 ran for {log.count('pass 2 runs')} of {cases} cases"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nnunet-bin", required=True, type=Path)
    parser.add_argument("--test", type=int, default=10)
    parser.add_argument("-d", default="DemoBHSD")
    parser.add_argument("--fold", default="0")
    parser.add_argument("--sss", action="append", metavar="CONFIGURATION:RUN",
                        help="an SSS configuration and run to time (repeatable; default 2d:SSS, the full method)")
    args = parser.parse_args()
    runs = [tuple(item.split(":", 1)) for item in (args.sss or ["2d:SSS"])]
    if any(len(run) != 2 for run in runs):
        parser.error("--sss takes CONFIGURATION:RUN, e.g. 2d_memory:SSS-supervised")
    work = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    raw = work / "nn_raw"
    dataset = make_demo_dataset(raw / "Dataset900_DemoBHSD", DemoSpec(6, 0, args.test, seed=11))
    images = dataset / "imagesTs"
    nn_python = str(args.nnunet_bin / "python")
    package = subprocess.run([nn_python, "-c", "import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    trainer_file = Path(package) / "training" / "nnUNetTrainer" / "variants" / f"{TRAINER}.py"
    trainer_file.write_text(TRAINER_SOURCE)
    nn_env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(work / "nn_pre"),
              "nnUNet_results": str(work / "nn_res"), "nnUNet_n_proc_DA": "1"}
    try:
        _timed([str(args.nnunet_bin / "nnUNetv2_plan_and_preprocess"), "-d", "900", "-c", "2d", "-np", "1"], nn_env)
        _timed([str(args.nnunet_bin / "nnUNetv2_train"), "900", "2d", "0", "-tr", TRAINER, "-device", "cpu"], nn_env)
        rows = []
        for tta in (True, False):
            out = work / f"nn_out_{tta}"
            seconds, _ = _timed([str(args.nnunet_bin / "nnUNetv2_predict"), "-i", str(images), "-o", str(out), "-d", "900",
                                 "-c", "2d", "-f", "0", "-tr", TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1"]
                                + ([] if tta else ["--disable_tta"]), nn_env)
            rows.append(("nnUNetv2_predict", tta, seconds, ""))
            for configuration, run in runs:
                out = work / f"sss_out_{configuration}_{tta}"
                seconds, log = _timed(["sss_predict", "-i", str(images), "-o", str(out), "-d", args.d, "-c", configuration,
                                       "-f", args.fold, "--run", run, "-np", "1", "--no-progress", "--verbose"]
                                      + ([] if tta else ["--disable-tta"]), dict(os.environ))
                rows.append((f"sss_predict -c {configuration} ({run})", tta, seconds, _second_pass(log, args.test)))
        plans = json.loads((work / "nn_pre" / "Dataset900_DemoBHSD" / "nnUNetPlans.json").read_text())["configurations"]["2d"]
    finally:
        trainer_file.unlink(missing_ok=True)
    print(f"{args.test} test cases of 20x128x128 voxels, {os.cpu_count()} CPU cores, one worker process each")
    print(f"nnU-Net 2d plan: patch {tuple(plans['patch_size'])}, batch {plans['batch_size']}\n")
    print("| command | TTA | total (s) | per case (s) | ratio sss / nnU-Net | note |")
    print("|---|---|---|---|---|---|")
    by_key = {(name, tta): seconds for name, tta, seconds, _ in rows}
    for name, tta, seconds, note in rows:
        ratio = seconds / by_key[("nnUNetv2_predict", tta)]
        print(f"| {name} | {'on' if tta else 'off'} | {seconds:.1f} | {seconds / args.test:.2f} | {ratio:.2f} | {note} |")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
