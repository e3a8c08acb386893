"""sss_demo end to end with a shortened schedule, through its installed entry point."""

import json
import os
import subprocess


def test_demo_runs_every_stage_and_writes_the_report(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSS_")}
    result = subprocess.run(["sss_demo", "-o", str(tmp_path / "demo"), "--epochs", "1", "--iters-per-epoch", "2",
                             "--no-progress"], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    demo = tmp_path / "demo"
    report = demo / "report"
    assert {"test_000.png", "test_001.png", "test_002.png", "progress.png", "index.html"} <= {p.name for p in report.iterdir()}
    summary = json.loads((demo / "predictions" / "summary.json").read_text())
    assert summary["n_cases"] == 3
    assert "IPH" in result.stdout and str(report / "index.html") in result.stdout
    assert (demo / "SSS_results" / "Dataset900_DemoBHSD" / "SSS__2d" / "fold_0" / "checkpoint_final.pth").is_file()
    again = subprocess.run(["sss_demo", "-o", str(demo), "--epochs", "1", "--iters-per-epoch", "2", "--no-progress"],
                           env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "already trained" in again.stderr
