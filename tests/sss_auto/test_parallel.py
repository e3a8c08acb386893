import os

import pytest

from sss_auto.errors import SSSError
from sss_auto.parallel import map_unordered


def test_results_of_every_item_come_back_from_the_workers():
    assert sorted(map_unordered(abs, [-3, -1, -2, 4], 2, "test", progress=False)) == [1, 2, 3, 4]


def test_a_dying_worker_is_reported_not_hung():
    with pytest.raises(SSSError, match=r"worker process of .test. died.*fewer workers \(-np\)"):
        list(map_unordered(os._exit, [3, 3, 3], 2, "test", progress=False))  # the worker process exits at once
