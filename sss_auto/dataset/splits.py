"""Five-fold cross-validation splits over labeled cases, kept in an editable splits_final.json."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sss_auto.errors import PlansError
from sss_auto.io.atomic import read_json, write_json_atomic

logger = logging.getLogger(__name__)
NUM_FOLDS = 5
ALL_FOLDS = tuple(str(fold) for fold in range(NUM_FOLDS))  # the folds' names, "0".."4"
SPLIT_SEED = 12345  # the shuffle of the labeled cases before they are cut into folds


def make_splits(case_ids: list[str], num_folds: int = NUM_FOLDS, seed: int = SPLIT_SEED) -> list[dict[str, list[str]]]:
    """Shuffle (seeded) and cut labeled cases into folds: [{"train": [...], "val": [...]}, ...].

    With fewer cases than folds, folds reuse cases round-robin so every fold has one validation case.
    """
    if len(case_ids) < 2:
        raise PlansError(f"cross-validation needs at least 2 labeled cases, found {len(case_ids)}")
    order = [str(c) for c in np.random.default_rng(seed).permutation(sorted(case_ids))]
    splits = []
    for fold in range(num_folds):
        if len(order) >= num_folds:
            val = sorted(order[fold::num_folds])
        else:
            val = [order[fold % len(order)]]
        splits.append({"train": sorted(c for c in order if c not in val), "val": val})
    return splits


def load_or_create_splits(path: Path, labeled_ids: list[str], seed: int = SPLIT_SEED) -> list[dict[str, list[str]]]:
    """Read splits_final.json (a user's own is respected) or write it once.

    Raises:
        PlansError: malformed file, or a case in it that is not a labeled case of the cache.
    """
    if path.is_file():
        try:
            splits = read_json(path)
        except ValueError as err:
            raise PlansError(str(err)) from err
        known = set(labeled_ids)
        if not isinstance(splits, list) or not all(isinstance(s, dict) and set(s) == {"train", "val"} for s in splits):
            raise PlansError(f"{path}: expected a list of {{\"train\": [...], \"val\": [...]}} objects")
        for index, split in enumerate(splits):
            unknown = sorted((set(split["train"]) | set(split["val"])) - known)
            if unknown:
                raise PlansError(f"{path}: fold {index} names cases that are not preprocessed labeled cases: "
                                 f"{', '.join(unknown[:5])}")
        logger.info("using the splits in %s", path)
        return splits
    splits = make_splits(labeled_ids, seed=seed)
    write_json_atomic(splits, path)
    logger.info("wrote %d-fold splits of %d labeled case(s) to %s", len(splits), len(labeled_ids), path)
    return splits


def fold_cases(splits: list[dict[str, list[str]]], fold: str, labeled_ids: list[str]) -> tuple[list[str], list[str]]:
    """(train, val) case ids of a fold; fold "all" trains on every labeled case and validates on none."""
    if fold == "all":
        return sorted(labeled_ids), []
    index = int(fold)
    if not 0 <= index < len(splits):
        raise PlansError(f"fold {fold} does not exist; splits_final.json has folds 0..{len(splits) - 1}")
    return list(splits[index]["train"]), list(splits[index]["val"])
