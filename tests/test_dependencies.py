"""Dependencies point down: the planner and prediction never load the trainer (issue 13 §3)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# package folder (or one file) -> module prefixes its files must not import
FORBIDDEN = {
    "planners": ("sss_auto.training", "sss_auto.data.loader"),
    "sss_auto/inference": ("sss_auto.training",),
    "sss_auto/method": ("sss_auto.training", "sss_auto.data.loader"),
    "sss_auto/postprocessing": ("sss_auto.training",),
    "sss_auto/evaluation": ("sss_auto.training", "sss_auto.inference"),
    "sss_auto/cli/predict.py": ("sss_auto.training",),
    "sss_auto/cli/ensemble.py": ("sss_auto.training",),
    "sss_auto/cli/evaluate.py": ("sss_auto.training", "sss_auto.inference"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` statement in the file names (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_imported_modules_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from sss_auto.training import loop\n")
    assert {"os", "sss_auto.training", "sss_auto.training.loop"} <= imported_modules(source)


def test_lower_layers_do_not_import_the_layers_above():
    offences = []
    for folder, prefixes in FORBIDDEN.items():
        files = [ROOT / folder] if folder.endswith(".py") else sorted((ROOT / folder).rglob("*.py"))
        assert files, folder
        for path in files:
            offences += [f"{path.relative_to(ROOT)} imports {name}" for name in sorted(imported_modules(path))
                         if any(name == p or name.startswith(p + ".") for p in prefixes)]
    assert offences == []


def test_prediction_and_planning_load_no_training_module():
    code = ("import sys, sss_auto.cli.predict, sss_auto.cli.ensemble, sss_auto.inference.models, "
            "sss_auto.inference.predictor, planners.planner, planners.memory, sss_auto.stages\n"
            "print(sorted(m for m in sys.modules if m.startswith('sss_auto.training') or m == 'sss_auto.data.loader'))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
