"""Choose per-class postprocessing from cross-validation predictions, and read/write postprocessing.json.

For each class, each candidate rule (keep the largest component; remove components smaller than
half the smallest labeled component of the fingerprint) is applied to that class of every
validation prediction, and kept only when it raises the class's mean Dice over the cases
(nnU-Net's convention: a case where the class is absent from both is left out). A rule only turns
voxels of its class into background, so it cannot change another class's Dice.
"""

from __future__ import annotations

import math
from pathlib import Path

from tqdm import tqdm

from planners.fingerprint import Fingerprint
from sss_auto.errors import SSSError
from sss_auto.evaluation.evaluate import nanmean, read_pair
from sss_auto.evaluation.metrics import class_metrics
from sss_auto.io.atomic import read_json, write_json_atomic
from sss_auto.postprocessing.components import ClassRule, filter_components

FILE_NAME = "postprocessing.json"
FORMAT = 1


def candidate_rules(value: int, fingerprint: Fingerprint) -> list[ClassRule]:
    """The rules tried for class `value`: keep the largest component; remove components below half the smallest labeled one."""
    rules = [ClassRule(keep_largest=True)]
    stats = fingerprint.classes.get(str(value))
    if stats is not None and stats.num_components > 0 and stats.volume_mm3_min > 0:
        rules.append(ClassRule(min_component_ml=stats.volume_mm3_min / 2 / 1000.0))
    return rules


def determine(pairs: list[tuple[Path, Path]], candidates: dict[int, list[ClassRule]], progress: bool = True) -> dict:
    """Mean Dice per class without and with each candidate rule over the (prediction, reference) pairs; the choice.

    Returns:
        {"classes": {value: {"dice_unchanged", "candidates": {description: dice}, "rule": {...}, "chosen"}},
         "n_cases"}.
    """
    if not pairs:
        raise SSSError("no validation prediction to determine postprocessing on")
    dice = {k: {"unchanged": []} | {r.describe(): [] for r in rules} for k, rules in candidates.items()}
    for prediction_path, reference_path in tqdm(pairs, desc="postprocessing", unit="case", disable=None if progress else True):
        prediction, reference, geometry = read_pair(prediction_path, reference_path)
        for value, rules in candidates.items():
            mask, truth = prediction == value, reference == value
            dice[value]["unchanged"].append(class_metrics(mask, truth)["dice"])
            for rule in rules:
                dice[value][rule.describe()].append(class_metrics(filter_components(mask, rule, geometry.spacing_mm), truth)["dice"])
    classes = {}
    for value, rules in candidates.items():
        unchanged = nanmean(dice[value]["unchanged"])
        scored = {r.describe(): nanmean(dice[value][r.describe()]) for r in rules}
        best = max(rules, key=lambda r: -math.inf if math.isnan(scored[r.describe()]) else scored[r.describe()], default=None)
        better = best is not None and not math.isnan(scored[best.describe()]) and \
            (math.isnan(unchanged) or scored[best.describe()] > unchanged + 1e-9)
        rule = best if better else ClassRule()
        classes[str(value)] = {"dice_unchanged": unchanged, "candidates": scored, "chosen": rule.describe(),
                               "rule": {"keep_largest": rule.keep_largest, "min_component_ml": rule.min_component_ml}}
    return {"n_cases": len(pairs), "classes": classes}


def save_postprocessing(result: dict, path: Path, source: dict) -> None:
    """Write postprocessing.json (atomically): the rules, the Dice they were chosen on, and where from."""
    write_json_atomic({"format": FORMAT, "determined_on": source, **result}, path)


def load_postprocessing(path: Path) -> dict[int, ClassRule]:
    """The per-class rules of a postprocessing.json.

    Raises:
        SSSError: unreadable file or a rule that is not {"keep_largest": bool, "min_component_ml": number|null}.
    """
    try:
        data = read_json(path)
        rules = {}
        for value, entry in data["classes"].items():
            rule = entry["rule"]
            keep, minimum = rule["keep_largest"], rule["min_component_ml"]
            if not isinstance(keep, bool) or not (minimum is None or (isinstance(minimum, (int, float)) and minimum >= 0)):
                raise ValueError(f"class {value}: rule {rule!r}")
            rules[int(value)] = ClassRule(keep, None if minimum is None else float(minimum))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise SSSError(f"{path}: not a valid postprocessing file ({err}); delete it or run sss_find_best_configuration "
                       "again") from err
    return rules


def load_active_rules(path: Path) -> dict[int, ClassRule]:
    """The rules of a postprocessing.json that change something (classes it leaves unchanged are omitted)."""
    return {k: r for k, r in load_postprocessing(path).items() if not r.is_identity()}
