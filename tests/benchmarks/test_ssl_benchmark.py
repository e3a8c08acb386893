"""The semi-supervised benchmark's smoke mode, end to end (tiny data, 2 variants, 1 seed, a seconds-long budget)."""

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import run_command

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ssl_benchmark.py"


def test_oracle_split_trains_on_every_labeled_pool_case_but_the_monitoring_ones(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    import ssl_benchmark
    from sss_auto.dataset.demo import DemoSpec, make_demo_dataset

    pool = make_demo_dataset(tmp_path / "pool", DemoSpec(6, 0, 0, (6, 40, 40), seed=3))
    train, val = ssl_benchmark.draw_split(pool, seed=0, n_labeled=2, n_val=2)
    oracle_train, oracle_val = ssl_benchmark.oracle_split(pool, val)
    assert oracle_val == val and not set(oracle_train) & set(val)
    assert set(train) < set(oracle_train) and len(oracle_train) == 4
    assert ssl_benchmark.VARIANTS["supervised_oracle"].oracle and not ssl_benchmark.VARIANTS["supervised"].oracle


@pytest.mark.slow
def test_smoke_mode_trains_scores_summarizes_and_reuses_finished_runs(tmp_path):
    env = dict(os.environ)
    out = tmp_path / "bench"
    first = run_command([sys.executable, str(SCRIPT), "--out", str(out), "--smoke", "--train-flags", "--batch-size", "2",
                         "--iters-per-epoch", "2", "--warmup-epochs", "1"], env, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert sorted(r["variant"] for r in runs) == ["supervised", "w2s"]
    for run in runs:
        assert run["scores"]["n_cases"] == 2, "every test case is scored"
        assert set(run["scores"]["dice_per_class"]) == {"1", "2", "3", "4"}
        assert run["epochs"] >= 1 and run["iterations"] == run["epochs"] * 2
        assert run["plan"]["patch"] and "--time-budget" in run["command"]
    table = (out / "summary.md").read_text()
    assert "Equal wall-clock: 0.3 min" in table and "weak-to-strong" in table and "Paired difference" in table
    assert (out / "dice.png").stat().st_size > 0
    again = run_command([sys.executable, str(SCRIPT), "--out", str(out), "--smoke"], env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "seed 0:" not in again.stdout, "finished runs are reused, not trained again"
    assert json.loads((out / "results.json").read_text())["runs"] == runs
    quality = run_command([sys.executable, str(SCRIPT.parent / "pseudo_label_quality.py"), "--out", str(out),
                           "--thresholds", "0", "0.9", "0.95", "--band-multiples", "10"], env, timeout=300)
    assert quality.returncode == 0, quality.stderr[-2000:]
    report = json.loads((out / "pseudo_label_quality.json").read_text())
    assert sorted(r["run"] for r in report["runs"]) == sorted(run_folder(r) for r in runs)
    for r in report["runs"]:
        assert len(r["precision"]) == 3 and len(r["recall"][0]) == 5
        assert all(high <= low + 1e-9 for low, high in zip(r["recall"][0], r["recall"][1])), "a higher bar passes fewer"
        assert r["band"]["tau"] == 0.95 and len(r["band"]["away_in_band"][0]) == 5
        assert all(0 <= v <= 1 for v in r["band"]["away_in_band"][0] + r["band"]["background_in_band"])
    assert "**IPH**" in quality.stdout and "τ=0.9 P / R / away" in quality.stdout and "foreground band" in quality.stdout


def run_folder(record: dict) -> str:
    """The run folder name of a benchmark record (its variant's)."""
    sys.path.insert(0, str(SCRIPT.parent))
    import ssl_benchmark
    return ssl_benchmark.VARIANTS[record["variant"]].run


def test_pseudo_label_counts_precision_recall_and_voxels_taught_away():
    sys.path.insert(0, str(SCRIPT.parent))
    from pseudo_label_quality import counts
    import numpy as np

    truth = np.array([[0, 1, 1, 1]])
    probabilities = np.array([[[0.9, 0.2, 0.97, 0.4]], [[0.1, 0.8, 0.03, 0.6]]])  # (2 classes, 1, 4)
    table = counts(probabilities, truth, [0.0, 0.85])
    # class 1 claimed at voxels 1, 3 (both right); voxel 2 is class 1 predicted background with 0.97
    assert table[0, 1].tolist() == [2, 2, 1] and table[1, 1].tolist() == [0, 0, 1]
    assert table[0, 0].tolist() == [2, 1, 1] and table[1, 0].tolist() == [2, 1, 1]  # background: right = away


def test_band_counts_the_taught_away_voxels_the_foreground_band_holds():
    sys.path.insert(0, str(SCRIPT.parent))
    from pseudo_label_quality import band_counts
    import numpy as np

    truth = np.array([[[0, 1, 1, 0, 0, 0, 0, 0, 0, 0]]])  # (1, 1, 10): class 1 at voxels 1 and 2
    p1 = np.array([0.0, 0.04, 0.01, 0.03, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    probabilities = np.stack([1 - p1, p1]).reshape(2, 1, 1, 10)  # everything confident background (>= 0.96)
    table = band_counts(probabilities, truth, {1: 0.1}, [1, 2], tau=0.95)
    # m = 1: the top 10 % (1 voxel) by p_1 is voxel 1; m = 2: voxels 1 and 3
    assert table[0].tolist() == [0, 1, 1] and table[1].tolist() == [0, 1, 2]


def test_pseudo_label_predictions_use_tta_and_the_teacher_only_when_asked():
    sys.path.insert(0, str(SCRIPT.parent))
    from pseudo_label_quality import predict_command

    plain = predict_command(Path("in"), Path("out"), "SSS-x", "student", tta=False)
    assert "--disable-tta" in plain and "--weights" not in plain and "--save-probabilities" in plain
    averaged = predict_command(Path("in"), Path("out"), "SSS-x", "teacher", tta=True)
    assert "--disable-tta" not in averaged and averaged[-2:] == ["--weights", "teacher"]


def test_paired_difference_gives_the_t_interval_of_the_mean_and_the_seeds_above_zero():
    sys.path.insert(0, str(SCRIPT.parent))
    import math
    from ssl_benchmark import paired_difference

    paired = paired_difference([0.01, 0.03, -0.01, 0.05])
    assert paired["n"] == 4 and paired["higher"] == 3
    assert math.isclose(paired["mean"], 0.02) and math.isclose(paired["sd"], math.sqrt(0.002 / 3))
    half = 3.182446 * math.sqrt(0.002 / 3) / 2  # t(0.975, 3 degrees of freedom) · sd / √n
    assert math.isclose(paired["ci95"][0], 0.02 - half, rel_tol=1e-5) and math.isclose(paired["ci95"][1], 0.02 + half, rel_tol=1e-5)
    one = paired_difference([0.04])
    assert one["higher"] == 1 and all(math.isnan(v) for v in one["ci95"]), "one seed has no interval"
