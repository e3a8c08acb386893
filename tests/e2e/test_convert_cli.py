"""sss_convert_bhsd through its entry point, then the dataset is planned like any other."""

import os
import subprocess


def test_convert_bhsd_then_refuse_to_overwrite(roots, tmp_path, bhsd_release):
    bhsd_release(tmp_path / "src")
    env = dict(os.environ)
    result = subprocess.run(["sss_convert_bhsd", str(tmp_path / "src"), "-d", "501", "--no-progress"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "4 labeled, 2 test, 3 unlabeled" in result.stdout
    assert (roots["raw"] / "Dataset501_BHSD" / "dataset.json").is_file()
    again = subprocess.run(["sss_convert_bhsd", str(tmp_path / "src"), "-d", "501"], env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr
    missing = subprocess.run(["sss_convert_bhsd", str(tmp_path / "nothing"), "-d", "502"], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "not found" in missing.stderr
