"""Map a picklable per-case function over items in worker processes, with a progress bar.

A worker that dies (out of memory, killed) raises an SSSError instead of hanging the command.
Worker processes are started once per process and worker count and reused by later maps (the
fingerprint and then preprocessing in `sss_plan_and_preprocess`): a spawned worker costs an
interpreter start and the imports of numpy, SimpleITK and scipy, about a second on a small CPU.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from tqdm import tqdm

from sss_auto.errors import SSSError

T = TypeVar("T")
R = TypeVar("R")


def map_unordered(fn: Callable[[T], R], items: Iterable[T], num_processes: int, desc: str,
                  unit: str = "case", progress: bool = True) -> Iterator[R]:
    """Yield fn(item) for every item, in completion order.

    Args:
        fn: a top-level (picklable) function.
        items: its arguments.
        num_processes: worker processes; 0 or 1 runs in this process (useful for debugging).
        desc, unit: progress-bar label and unit.
        progress: False hides the bar (it is also hidden when output is not a terminal).

    Raises:
        SSSError: a worker process died; the message suggests fewer workers (-np).
        Any exception raised by `fn` is re-raised unchanged (remaining work is cancelled).
    """
    items = list(items)
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=None if progress else True)
    try:
        if num_processes <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update()
            return
        workers = min(num_processes, len(items))
        pool = _pool(workers)
        pending = iter(items)
        running = set()
        try:
            running = {pool.submit(fn, item) for item in itertools.islice(pending, 2 * workers)}
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    bar.update()
                    yield result
                    for item in pending:
                        running.add(pool.submit(fn, item))
                        break
        except BrokenProcessPool as err:
            _discard_pool(workers)
            raise SSSError(
                f"a worker process of '{desc}' died (often out of memory); re-run with fewer workers (-np)"
            ) from err
        finally:
            for future in running:
                future.cancel()
    finally:
        bar.close()


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    """This process's pool of `workers` spawned workers, started on first use."""
    if workers not in _POOLS:
        _POOLS[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    return _POOLS[workers]


def _discard_pool(workers: int) -> None:
    pool = _POOLS.pop(workers, None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def shutdown_pools() -> None:
    """Stop every worker process this process started (also run at exit)."""
    for workers in list(_POOLS):
        pool = _POOLS.pop(workers)
        pool.shutdown(wait=True, cancel_futures=True)
