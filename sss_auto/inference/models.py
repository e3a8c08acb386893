"""Find trained runs under SSS_results and load their folds for prediction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path


from planners.fingerprint import load_fingerprint
from planners.plans import load_plans
from sss_auto.configuration import TrainConfig, train_config_from_json
from sss_auto.dataset.raw import matches_dataset
from sss_auto.errors import CheckpointError, PlansError
from sss_auto.io.atomic import read_json
from sss_auto.io.checkpoint import BEST, FINAL, load_checkpoint
from sss_auto.io.serialization import SchemaError
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.constraints import constraints_from_fingerprint
from sss_auto.prompting.pcsw import ClassConstraint

logger = logging.getLogger(__name__)
CHECKPOINTS = {"final": FINAL, "best": BEST}
WEIGHTS = ("student", "teacher")


@dataclass(frozen=True)
class TrainedRun:
    """A run folder SSS_results/<dataset>/<run>__<configuration> and its folds that have the checkpoint."""

    dataset: str
    run: str
    configuration: str
    folder: Path
    folds: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.dataset} {self.run}__{self.configuration} (folds {', '.join(self.folds)})"


@dataclass
class LoadedRun:
    """Everything inference needs: one network per fold, the run's resolved configuration (plans, model,
    inference settings) and the PCSW constraints."""

    models: list[SSSNet]
    config: TrainConfig
    constraints: dict[int, ClassConstraint]


def find_trained_runs(results_root: Path, checkpoint: str = "final") -> list[TrainedRun]:
    """Every run folder with at least one fold holding the chosen checkpoint."""
    runs = []
    for plans_path in sorted(Path(results_root).glob("*/*__*/plans.json")):
        folder = plans_path.parent
        run, _, configuration = folder.name.rpartition("__")
        folds = tuple(sorted(f.name[len("fold_"):] for f in folder.glob("fold_*") if (f / CHECKPOINTS[checkpoint]).is_file()))
        if folds:
            runs.append(TrainedRun(folder.parent.name, run, configuration, folder, folds))
    return runs


def choose_run(runs: list[TrainedRun], dataset: str | None, configuration: str | None, run: str | None,
               results_root: Path) -> TrainedRun:
    """The single run matching the filters; the error lists what exists when none or several match."""
    matching = [r for r in runs if (dataset is None or matches_dataset(r.dataset, dataset))
                and (configuration is None or r.configuration == configuration) and (run is None or r.run == run)]
    if len(matching) == 1:
        return matching[0]
    existing = "; ".join(r.describe() for r in runs) or "none"
    if not matching:
        raise CheckpointError(f"no trained model in {results_root} matches; trained models: {existing}")
    best = _named_best(matching, results_root)
    if best is not None:
        return best
    raise CheckpointError(f"several trained models match, choose with -d/-c/--run (or rank them with "
                          f"sss_find_best_configuration): {existing}")


def _named_best(matching: list[TrainedRun], results_root: Path) -> TrainedRun | None:
    """Among runs of one dataset, the one sss_find_best_configuration ranked best (inference_information.json)."""
    if len({r.dataset for r in matching}) != 1:
        return None
    path = Path(results_root) / matching[0].dataset / "inference_information.json"
    try:
        best = read_json(path)["best"] if path.is_file() else None
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("%s: unreadable (%s); not used to choose the model", path, err)
        return None
    chosen = next((r for r in matching if r.folder.name == best), None)
    if chosen is not None:
        logger.info("several trained models match; using %s, which sss_find_best_configuration ranked best (%s)",
                    chosen.describe(), path)
    elif best is not None:
        logger.info("%s names %s best, which is not one of the matching models (an ensemble is predicted as "
                    "inference_instructions.txt says)", path, best)
    return chosen


def load_run(run: TrainedRun, folds: list[str] | None, checkpoint: str, device: str, weights: str = "student") -> LoadedRun:
    """Build each fold's network from its training_config.json and load its checkpoint (weights_only).

    Args:
        weights: "student" (the trained network) or "teacher" (its EMA copy; semi-supervised runs only).
    """
    if weights not in WEIGHTS:
        raise CheckpointError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    folds = folds or list(run.folds)
    unknown = sorted(set(folds) - set(run.folds))
    if unknown:
        raise CheckpointError(f"{run.folder}: fold(s) {', '.join(unknown)} have no {CHECKPOINTS[checkpoint]}; "
                              f"available: {', '.join(run.folds)}")
    run_plans = load_plans(run.folder / "plans.json")
    models, configs = [], []
    for fold in folds:
        folder = run.folder / f"fold_{fold}"
        try:
            config = train_config_from_json(read_json(folder / "training_config.json"), run_plans)
        except (OSError, ValueError, SchemaError) as err:
            raise PlansError(f"{folder / 'training_config.json'}: {err}") from err
        if configs and _preprocessing(config) != _preprocessing(configs[0]):
            raise PlansError(f"{folder / 'training_config.json'}: fold {fold} was trained on other plans (patch, spacing, "
                             f"labels or normalisation) than fold {folds[0]}; predict with one of them (-f) or retrain it")
        configs.append(config)
        model = SSSNet(config.model, None, "cpu")
        state = load_checkpoint(folder / CHECKPOINTS[checkpoint])
        if not state.get(weights):
            raise CheckpointError(f"{folder / CHECKPOINTS[checkpoint]} holds no {weights} weights (a supervised-only run "
                                  "has no EMA teacher); predict with the student")
        model.load_trained_state(state[weights])
        models.append(model.to(device).eval())
    config = configs[0]
    constraints = constraints_from_fingerprint(load_fingerprint(run.folder / "fingerprint.json"), config.plans)
    logger.info("loaded %s, fold(s) %s, %s checkpoint, %s weights", run.describe().split(" (")[0], ", ".join(folds),
                checkpoint, weights)
    return LoadedRun(models, config, constraints)


def _preprocessing(config: TrainConfig) -> tuple:
    """What the folds of an ensemble must share: the plans without the training schedule, and the network's input."""
    plans = config.plans
    return (plans.channel_names, plans.labels, plans.transpose_forward, plans.normalization, plans.resampling,
            config.plan.spacing_mm, config.plan.resample_z, config.plan.patch_size, config.model.in_channels, config.model.num_classes)
