"""Scale benchmark: how each cost of a semi-supervised run grows with the size of the unlabeled pool.

Usage:
    python benchmarks/scale.py --out DIR [--sizes 200 1000 2000] [--shape 8 64 64] [--workers 2] [--smoke]

For every pool size N (unlabeled volumes, plus 6 labeled) the demo generator writes a fresh dataset
of small volumes, and the installed commands run on it as a user would (full method planned, so the
PCSW bank exists):

- `sss_plan_and_preprocess`: wall time and peak RSS of its process tree;
- `sss_train` fold 0 (one SSL epoch of 2 iterations): the first start-up (every cached array hashed
  once), one full PCSW bank refresh over the N volumes (from its log lines), the bank file's size,
  the peak RSS;
- `sss_train` fold 1 (supervised, 1 iteration): the start-up with a verified cache;
- in this process: loader throughput over the N unlabeled ids (batches per second, RSS growth), and
  the time to write and read a checkpoint and the bank file of that run.

Writes DIR/scale.json, DIR/scale.md (table, and a fit of every cost against N: the exponent b of
cost ~ N^b and the cost per 1,000 volumes of a linear fit) and DIR/scale.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from process_tree import measure  # noqa: E402
from sss_auto.dataset.demo import DemoSpec, make_demo_dataset  # noqa: E402

DATASET = "Dataset900_DemoBHSD"
LABELED = 6
COSTS = {  # key: (label, unit)
    "preprocess_s": ("sss_plan_and_preprocess wall time", "s"),
    "preprocess_rss_mib": ("sss_plan_and_preprocess peak RSS (process tree)", "MiB"),
    "first_startup_s": ("sss_train start-up, first start (hashes the cache)", "s"),
    "verified_startup_s": ("sss_train start-up, cache verified before", "s"),
    "refresh_s": ("one full PCSW bank refresh", "s"),
    "bank_file_mib": ("PCSW bank file", "MiB"),
    "train_rss_mib": ("sss_train peak RSS (process tree)", "MiB"),
    "checkpoint_write_s": ("checkpoint write (the bank is a file of its own)", "s"),
    "checkpoint_mib": ("checkpoint size", "MiB"),
    "bank_write_s": ("bank file write", "s"),
    "loader_batches_per_s": ("loader throughput, batch 4 + 4, in-process", "batches/s"),
    "loader_rss_growth_mib": ("loader peak RSS growth over 40 batches", "MiB"),
}


def _env(work: Path) -> dict:
    return dict(os.environ, SSS_raw=str(work / "raw"), SSS_preprocessed=str(work / "preprocessed"),
                SSS_results=str(work / "results"))


def run_size(n: int, work: Path, shape: tuple[int, int, int], workers: int) -> dict:
    """Every cost for a pool of `n` unlabeled volumes (a fresh dataset under `work`)."""
    shutil.rmtree(work, ignore_errors=True)
    started = time.time()
    make_demo_dataset(work / "raw" / DATASET, DemoSpec(n_labeled=LABELED, n_unlabeled=n, n_test=0, shape=shape, seed=11))
    generated_s = time.time() - started
    env = _env(work)
    plan = measure(["sss_plan_and_preprocess", "-d", "DemoBHSD", "--sam2-variant", "test", "--method", "full", "-np",
                    str(workers), "--no-progress"], env)
    common = ["--batch-size", "2", "--num-workers", "1", "--no-progress", "--disable-val-tta"]
    train = measure(["sss_train", "DemoBHSD", "2d", "0", "--epochs", "1", "--iters-per-epoch", "2", "--warmup-epochs", "0",
                     "--ssl-start", "warmup", *common], env)
    again = measure(["sss_train", "DemoBHSD", "2d", "1", "--supervised-only", "--epochs", "1", "--iters-per-epoch", "1",
                     *common], env)
    fold = work / "results" / DATASET / "SSS__2d" / "fold_0"
    record = {"n_unlabeled": n, "generate_s": round(generated_s, 1), "preprocess_s": plan.wall_s,
              "preprocess_rss_mib": plan.peak_tree_mib, "train_rss_mib": train.peak_tree_mib,
              "first_startup_s": _startup(train), "verified_startup_s": _startup(again),
              "refresh_s": _between(train, "PCSW bank refresh at epoch 0 starts", "PCSW bank at epoch 0:")}
    record.update(_files(fold))
    record.update(_loader(work, n))
    return record


def _startup(run) -> float:
    """Seconds from the process start to the log line that opens training (cache checked, model built)."""
    return round(run.seconds_at("training on ") or float("nan"), 2)


def _between(run, first: str, last: str) -> float:
    a, b = run.seconds_at(first), run.seconds_at(last)
    return round(b - a, 2) if a is not None and b is not None else float("nan")


def _files(fold: Path) -> dict:
    """Write/read time and size of the run's checkpoint and of its bank file (repeated 3 times, median)."""
    from sss_auto.io.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(fold / "checkpoint_final.pth")
    bank_path = fold / checkpoint["bank"]["file"]
    bank = load_checkpoint(bank_path)
    bank.pop("format_version")
    times = {"checkpoint": [], "bank": []}
    for _ in range(3):
        for name, state in (("checkpoint", checkpoint), ("bank", bank)):
            start = time.perf_counter()
            save_checkpoint(state, fold / f"timing_{name}.pth")
            times[name].append(time.perf_counter() - start)
    sizes = {name: (fold / f"timing_{name}.pth").stat().st_size / 2**20 for name in times}
    return {"checkpoint_write_s": round(float(np.median(times["checkpoint"])), 3),
            "checkpoint_mib": round(sizes["checkpoint"], 2), "bank_write_s": round(float(np.median(times["bank"])), 3),
            "bank_file_mib": round(bank_path.stat().st_size / 2**20, 4)}


def _loader(work: Path, n: int) -> dict:
    """Batches per second of the training loader (no worker process) over the whole unlabeled pool, and RSS growth."""
    from sss_auto.data.cache import CaseCache
    from sss_auto.data.loader import LoaderSpec, epoch_loader
    from sss_auto.prompting.bank import PromptBank

    folder = work / "preprocessed" / DATASET / "2d"
    cache = CaseCache(folder)
    spec = LoaderSpec(cache_folder=folder, labeled_ids=tuple(cache.ids("labeled")),
                      unlabeled_ids=tuple(cache.ids("unlabeled")), patch=64, batch_labeled=4, batch_unlabeled=4,
                      num_foreground=3)
    for _ in epoch_loader(spec, PromptBank(), 5, seed=0, epoch=0, num_workers=0):  # warm-up: imports, first reads
        pass
    before, peak = _rss_now_mib(), 0.0
    start = time.perf_counter()
    batches = 0
    for _ in epoch_loader(spec, PromptBank(), 40, seed=0, epoch=1, num_workers=0):
        batches += 1
        peak = max(peak, _rss_now_mib())
    seconds = time.perf_counter() - start
    return {"loader_batches_per_s": round(batches / seconds, 1), "loader_rss_growth_mib": round(max(peak - before, 0.0), 1)}


def _rss_now_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def growth(sizes: list[int], values: list[float]) -> dict:
    """Exponent b of value ~ N^b (log-log least squares) and the slope per 1,000 volumes of a linear fit."""
    n, v = np.asarray(sizes, float), np.asarray(values, float)
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 2:
        return {"exponent": float("nan"), "per_1000": float("nan"), "intercept": float("nan")}
    exponent = float(np.polyfit(np.log(n[ok]), np.log(v[ok]), 1)[0])
    slope, intercept = np.polyfit(n[ok], v[ok], 1)
    return {"exponent": round(exponent, 2), "per_1000": round(float(slope) * 1000, 3), "intercept": round(float(intercept), 3)}


def report(records: list[dict], header: str) -> tuple[str, dict]:
    """The markdown table (one column per N) with each cost's fitted growth."""
    sizes = [r["n_unlabeled"] for r in records]
    fits = {key: growth(sizes, [r[key] for r in records]) for key in COSTS}
    lines = [header, "", "| cost | " + " | ".join(f"N = {n}" for n in sizes) + " | growth: N^b, b = | linear: per 1,000 volumes |",
             "|---|" + "---|" * len(sizes) + "---|---|"]
    for key, (label, unit) in COSTS.items():
        fit = fits[key]
        lines.append(f"| {label} ({unit}) | " + " | ".join(f"{r[key]:.3g}" for r in records)
                     + f" | {fit['exponent']:.2f} | {fit['per_1000']:+.3g} |")
    return "\n".join(lines), fits


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["n_unlabeled"] for r in records]
    keys = list(COSTS)
    fig, axes = plt.subplots(3, 4, figsize=(16, 10))
    for ax, key in zip(axes.ravel(), keys):
        ax.plot(sizes, [r[key] for r in records], "o-")
        ax.set_title(COSTS[key][0], fontsize=8)
        ax.set_xlabel("unlabeled volumes N")
        ax.set_ylabel(COSTS[key][1])
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 2000])
    parser.add_argument("--shape", type=int, nargs=3, default=[8, 64, 64], help="nominal z y x of a volume")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="a minute-long check: sizes 4 and 8, 6 x 40 x 40 volumes")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.shape = [4, 8], [6, 40, 40]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for n in args.sizes:
        print(f"N = {n} ...", flush=True)
        records.append(run_size(n, out / "work", tuple(args.shape), args.workers))
        (out / "scale.json").write_text(json.dumps({"records": records}, indent=2))
    shutil.rmtree(out / "work", ignore_errors=True)
    header = (f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. Volumes of "
              f"about {tuple(args.shape)} voxels (z, y, x), {LABELED} labeled + N unlabeled, -np {args.workers}; "
              f"command: python benchmarks/scale.py {' '.join(sys.argv[1:])}")
    table, fits = report(records, header)
    (out / "scale.md").write_text(table + "\n")
    (out / "scale.json").write_text(json.dumps({"records": records, "growth": fits, "shape": list(args.shape)}, indent=2))
    plot(records, out / "scale.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
