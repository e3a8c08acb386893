"""What the semi-supervised benchmark's runs logged about their own mechanics, as tables.

Usage: python benchmarks/ssl_diagnostics.py --out DIR   (the --out folder of benchmarks/ssl_benchmark.py)

Per run folder found under DIR/seed_*/SSS_results (its final checkpoint's history and its
training_summary.json): the swap diagnostic and DFE gates (first and last SSL epoch), PCSW's prompt
quality on the validation cases at the last bank refresh, the per-class pseudo-label shares and mask
ratios of the last epoch, and the final validation's coarse (pass 1) and fused (pass 2) mean Dice.
With --test-coarse, every run that refines also predicts the held-out test cases with pass 1 only
(`sss_predict --coarse-only`), and the coarse and fused test Dice per class are printed side by side
(the fused predictions are the benchmark's own). Prints markdown.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sss_auto.io.atomic import read_json  # noqa: E402
from sss_auto.io.checkpoint import load_checkpoint  # noqa: E402
from benchmarks.ssl_benchmark import DATASET_FOLDER, DATASET_NAME, VARIANTS, _run, score, sss_env  # noqa: E402


def _last(history: dict, key: str) -> float:
    values = [v for v in history.get(key, []) if not math.isnan(v)]
    return values[-1] if values else math.nan


def _first(history: dict, key: str) -> float:
    values = [v for v in history.get(key, []) if not math.isnan(v)]
    return values[0] if values else math.nan


def _cell(value: float, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-coarse", action="store_true", help="also score pass 1 alone on the test cases")
    args = parser.parse_args(argv)
    rows = []
    for fold in sorted(args.out.glob("seed_*/SSS_results/*/*__2d/fold_0")):
        if not (fold / "checkpoint_final.pth").is_file():
            continue
        history = load_checkpoint(fold / "checkpoint_final.pth")["history"]
        summary = read_json(fold / "training_summary.json")
        validation = summary.get("final_validation") or {}
        classes = sorted(int(key[len("dice_"):]) for key in history if key.startswith("dice_") and key[5:].isdigit())
        rows.append({
            "seed": fold.parts[-5], "run": fold.parent.name.rsplit("__", 1)[0],
            "swap": (_first(history, "swap_rise"), _last(history, "swap_rise")),
            "gates": tuple(_last(history, f"dfe_gate_{level}") for level in (1, 2)),
            "prompts": {k: tuple(_last(history, f"prompt_{m}_{k}") for m in ("recall", "precision", "box_iou")) for k in classes},
            "pseudo": {k: (_last(history, f"pl_{k}"), _last(history, f"plc_{k}"), _last(history, f"mask_ratio_{k}")) for k in classes},
            "fused": (validation.get("mean") or {}).get("dice", math.nan),
            "coarse": ((validation.get("coarse") or {}).get("mean") or {}).get("dice", math.nan),
        })
    print("| seed | run | swap_rise first / last SSL epoch | DFE gates (stride 8, 16) at the end | validation Dice coarse / fused |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['run']} | {_cell(r['swap'][0], 4)} / {_cell(r['swap'][1], 4)} | "
              f"{_cell(r['gates'][0], 4)}, {_cell(r['gates'][1], 4)} | {_cell(r['coarse'])} / {_cell(r['fused'])} |")
    _class_table("PCSW prompts on the validation cases at the last bank refresh (recall / precision / box IoU per class)",
                 rows, "prompts", lambda v: "/".join(_cell(x, 2) for x in v))
    _class_table("Pseudo labels of the last epoch (share of weak-view pixels, all / confident; mask ratio on the class's pixels)",
                 rows, "pseudo", lambda v: f"{v[0]:.1e} / {v[1]:.1e}; {_cell(v[2], 2)}")
    if args.test_coarse:
        _test_coarse_vs_fused(args.out.resolve())
    return 0


def _class_table(title: str, rows: list[dict], key: str, cell) -> None:
    """A per-class markdown table of rows[*][key] (class -> tuple), skipping runs without a first value."""
    classes = list(rows[0][key]) if rows else []
    print(f"\n{title}:\n")
    print("| seed | run | " + " | ".join(f"class {k}" for k in classes) + " |")
    print("|---|---|" + "---|" * len(classes))
    for r in rows:
        if all(math.isnan(v[0]) for v in r[key].values()):
            continue
        print(f"| {r['seed']} | {r['run']} | " + " | ".join(cell(v) for v in r[key].values()) + " |")


def _test_coarse_vs_fused(out: Path) -> None:
    """Predict the test cases coarse-only with every refining run and print both test Dice per class."""
    pool = out / "pool" / DATASET_FOLDER
    names = {str(v): k for k, v in read_json(pool / "dataset.json")["labels"].items() if v > 0}
    print("\nTest Dice, coarse (pass 1) / fused (pass 2), per class and mean:\n")
    print("| seed | variant | mean | " + " | ".join(names.values()) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for variant in VARIANTS.values():
        if "--no-refine" in variant.flags:
            continue
        for seed_folder in sorted(out.glob("seed_*")):
            tag = next((p.name[len(variant.name) + 1:] for p in sorted((seed_folder / "predictions").glob(f"{variant.name}_budget*"))
                        if not p.name.endswith("_teacher")), None)
            run = seed_folder / "SSS_results" / DATASET_FOLDER / f"{variant.run}__2d" / "fold_0"
            if tag is None or not (run / "checkpoint_final.pth").is_file():
                continue
            coarse = seed_folder / "predictions" / f"{variant.name}_{tag}_coarse"
            if not (coarse / "prediction_info.json").is_file():
                _run(["sss_predict", "-i", str(pool / "imagesTs"), "-o", str(coarse), "-d", DATASET_NAME, "-c", "2d",
                      "-f", "0", "--run", variant.run, "--checkpoint", "final", "--coarse-only", "--disable-tta",
                      "-np", "1", "--no-progress"], sss_env(seed_folder, 0), seed_folder / "logs" / f"predict_{variant.name}_coarse.log")
            a, b = score(pool, coarse), score(pool, seed_folder / "predictions" / f"{variant.name}_{tag}")
            print(f"| {seed_folder.name} | {variant.name} | {a['dice']:.3f} / {b['dice']:.3f} | "
                  + " | ".join(f"{a['dice_per_class'][k]:.3f} / {b['dice_per_class'][k]:.3f}" for k in names) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
