import os

import pytest

from sss_auto.errors import SSSError
from sss_auto.parallel import map_unordered


def test_results_of_every_item_come_back_from_the_workers():
    assert sorted(map_unordered(abs, [-3, -1, -2, 4], 2, "test", progress=False)) == [1, 2, 3, 4]


def test_a_dying_worker_is_reported_not_hung():
    with pytest.raises(SSSError, match=r"worker process of .test. died.*fewer workers \(-np\)"):
        list(map_unordered(os._exit, [3, 3, 3], 2, "test", progress=False))  # the worker process exits at once


def test_the_next_map_reuses_the_worker_processes_and_a_dead_pool_is_replaced():
    from sss_auto import parallel

    assert sorted(map_unordered(abs, [-1, -2, -3], 2, "first", progress=False)) == [1, 2, 3]
    pool, workers = parallel._POOLS[2], set(parallel._POOLS[2]._processes)
    assert sorted(map_unordered(abs, [-4, -5], 2, "second", progress=False)) == [4, 5]
    assert parallel._POOLS[2] is pool and set(pool._processes) == workers, "the same worker processes did the second map"
    with pytest.raises(SSSError):
        list(map_unordered(os._exit, [3, 3], 2, "dies", progress=False))
    assert 2 not in parallel._POOLS, "a broken pool is not reused"
    assert sorted(map_unordered(abs, [-6, -7], 2, "after", progress=False)) == [6, 7]
    parallel.shutdown_pools()
    assert parallel._POOLS == {}
