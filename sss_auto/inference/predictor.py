"""Predict a set of input cases: preprocess in workers, two-pass SSS inference here, export in workers.

Outputs are written atomically, so an existing `<case>.nii.gz` is always complete and `resume`
skips it. A case that fails is reported by name and the others go on (unless `fail_fast`).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from sss_auto.dataset.raw import Case
from sss_auto.errors import SSSError
from sss_auto.io.atomic import remove_stale_temporaries
from sss_auto.inference.case_io import export_one, read_and_preprocess
from sss_auto.inference.inputs import InputProblem
from sss_auto.inference.models import LoadedRun
from sss_auto.inference.settings import InferenceSettings
from sss_auto.inference.two_pass import predict_volume
from sss_auto.postprocessing.components import ClassRule

logger = logging.getLogger(__name__)


@dataclass
class PredictionReport:
    """Case ids predicted now, skipped as already done, and the problems of the failed ones."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[InputProblem] = field(default_factory=list)


class _Inline:
    """Runs submitted work immediately (no worker processes)."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:  # reported through the future, as a pool would
            future.set_exception(err)
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def predict_cases(cases: list[Case], loaded: LoadedRun, output: Path, settings: InferenceSettings,
                  resume: bool = False, save_probabilities: bool = False, fail_fast: bool = False,
                  num_processes: int = 2, progress: bool = True,
                  postprocessing: dict[int, ClassRule] | None = None, nnunet_layout: bool = False) -> PredictionReport:
    """Predict every case into `output/<case>.nii.gz` (with `postprocessing`'s per-class rules applied;
    probabilities in nnU-Net's `.npz`/`.pkl` layout with `nnunet_layout`)."""
    output.mkdir(parents=True, exist_ok=True)
    report = PredictionReport()
    if resume:
        remove_stale_temporaries(output)
    todo = []
    for case in cases:
        if resume and (output / f"{case.case_id}.nii.gz").is_file():
            report.skipped.append(case.case_id)
        else:
            todo.append(case)
    if report.skipped:
        logger.info("%d case(s) already predicted in %s: skipped (--continue)", len(report.skipped), output)
    configuration = loaded.config.configuration
    pool = (ProcessPoolExecutor(num_processes, mp_context=multiprocessing.get_context("spawn"))
            if num_processes > 0 else _Inline())
    with pool:
        window = max(1, num_processes) + 1
        queued: deque[tuple[Case, Future]] = deque()
        pending = iter(todo)
        exports: deque[tuple[str, Future]] = deque()  # at most `window` in flight: bounded memory

        def finish_exports(keep: int) -> None:
            while len(exports) > keep:
                case_id, export = exports.popleft()
                try:
                    export.result()
                    report.done.append(case_id)
                except Exception as err:
                    _fail(report, case_id, err, fail_fast)

        def refill() -> None:
            while len(queued) < window:
                case = next(pending, None)
                if case is None:
                    return
                queued.append((case, pool.submit(read_and_preprocess, (case, loaded.config.plans, configuration))))

        refill()
        bar = tqdm(total=len(todo), desc="predict", unit="case", disable=None if progress else True)
        while queued:
            case, future = queued.popleft()
            refill()
            try:
                cached = future.result()
                finish_exports(keep=window - 1)
                probabilities = predict_volume(loaded.models, cached.data, cached.properties.spacing_after_resampling_mm,
                                               settings, loaded.constraints).probabilities
                exports.append((case.case_id, pool.submit(export_one, (probabilities, cached.properties, loaded.config.plans,
                                                                       output / f"{case.case_id}.nii.gz", save_probabilities,
                                                                       postprocessing, nnunet_layout))))
            except Exception as err:
                _fail(report, case.case_id, err, fail_fast)
            bar.update()
        bar.close()
        finish_exports(keep=0)
    return report


def _fail(report: PredictionReport, case_id: str, err: Exception, fail_fast: bool) -> None:
    if isinstance(err, BrokenProcessPool):
        raise SSSError("a prediction worker process died (often out of memory); re-run with fewer workers (-np) "
                       "and --continue") from err
    if fail_fast:
        raise err
    message = str(err) if isinstance(err, SSSError) else f"{case_id}: unexpected {type(err).__name__}: {err}"
    logger.error("%s", message)
    logger.debug("traceback of %s", case_id, exc_info=err)
    report.failed.append(InputProblem(case_id, message))


