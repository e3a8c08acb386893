"""sss_demo: demo data → plan → preprocess → short training → prediction → evaluation → pictures."""

from __future__ import annotations

import argparse
from pathlib import Path

from sss_auto.cli.common import add_common_options, run_command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run the whole pipeline on a synthetic head-CT dataset (about 3 minutes on a 2-core CPU).")
    p.add_argument("-o", type=Path, default=Path("sss_demo"), help="folder for everything the demo writes (default ./sss_demo)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 10)")
    p.add_argument("--iters-per-epoch", type=int, default=None, help="iterations per epoch (default 60)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    p.add_argument("--num-workers", type=int, default=None, help="data loading workers (default: sss_train's, CPUs - 1, at most 8)")
    add_common_options(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from sss_auto.demo_run import DemoSchedule, run_demo
    from sss_auto.evaluation.evaluate import format_table

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    schedule = DemoSchedule()
    if args.epochs is not None:
        schedule = replace(schedule, epochs=args.epochs, warmup_epochs=min(schedule.warmup_epochs, max(args.epochs - 1, 0)))
    if args.iters_per_epoch is not None:
        schedule = replace(schedule, iterations_per_epoch=args.iters_per_epoch)
    result = run_demo(args.o, schedule, device, args.num_workers, not args.no_progress)
    print(format_table(result.summary, result.class_names))
    if result.headline is not None:
        from sss_auto.report.headline import headline_text

        print("\nWhat the method buys, from the semi-supervised benchmark (not from this demo run):\n"
              + headline_text(result.headline))
    print(f"\nreport:      {result.report}\npredictions: {result.predictions}\nmodel:       {result.fold_folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_run, _parser(), argv)
