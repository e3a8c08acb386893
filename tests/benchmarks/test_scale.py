"""The scale benchmark: its growth fit by hand, and its smoke mode end to end."""

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import run_command

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


def test_growth_fits_the_exponent_and_the_linear_cost_per_1000_volumes():
    sys.path.insert(0, str(SCRIPT.parent))
    import scale

    linear = scale.growth([200, 1000, 2000], [3.0 + 0.01 * n for n in (200, 1000, 2000)])
    assert linear["per_1000"] == pytest.approx(10.0) and linear["intercept"] == pytest.approx(3.0)
    quadratic = scale.growth([100, 200, 400], [n**2 for n in (100, 200, 400)])
    assert quadratic["exponent"] == pytest.approx(2.0)
    flat = scale.growth([100, 200], [5.0, 5.0])
    assert flat["exponent"] == pytest.approx(0.0) and flat["per_1000"] == pytest.approx(0.0)
    assert str(scale.growth([100, 200], [0.0, float("nan")])["exponent"]) == "nan"


@pytest.mark.slow
def test_smoke_mode_measures_every_cost_for_two_pool_sizes(tmp_path):
    result = run_command([sys.executable, str(SCRIPT), "--out", str(tmp_path / "scale"), "--smoke"], dict(os.environ),
                         timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    data = json.loads((tmp_path / "scale" / "scale.json").read_text())
    assert [r["n_unlabeled"] for r in data["records"]] == [4, 8]
    for record in data["records"]:
        assert record["refresh_s"] > 0 and record["first_startup_s"] > 0 and record["verified_startup_s"] > 0
        assert record["checkpoint_mib"] > 0 and record["loader_batches_per_s"] > 0
    assert (tmp_path / "scale" / "scale.png").is_file() and "growth: N^b" in (tmp_path / "scale" / "scale.md").read_text()
    assert not (tmp_path / "scale" / "work").exists()
