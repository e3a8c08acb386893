import os

import pytest
from torch.utils.data import DataLoader, IterableDataset

from sss_auto.data.loader import LoaderSpec, epoch_loader, iterate_safely
from sss_auto.errors import SSSError
from sss_auto.prompting.bank import PromptBank


class _DyingWorker(IterableDataset):
    def __iter__(self):
        os._exit(3)
        yield 0


def test_a_dying_worker_is_reported_not_hung():
    with pytest.raises(SSSError, match="data-loading worker process died.*--num-workers"):
        list(iterate_safely(DataLoader(_DyingWorker(), batch_size=None, num_workers=1)))


@pytest.fixture
def cache_folder(dataset_dir, roots):
    from planners.fingerprint import extract_fingerprint
    from planners.planner import plan
    from preprocessing.runner import preprocess_dataset
    from sss_auto.dataset.integrity import check_dataset_structure
    from sss_auto.dataset.raw import load_dataset

    dataset = load_dataset(dataset_dir)
    plans = plan(extract_fingerprint(dataset, 1, False), 8.0, "test")
    subsets = check_dataset_structure(dataset)
    folder = roots["preprocessed"] / "2d"
    preprocess_dataset(subsets["labeled"] + subsets["unlabeled"], plans, "2d", folder, 1, False)
    return folder


def test_batches_are_reproducible_per_epoch_and_oversample_foreground(cache_folder):
    from sss_auto.data.cache import CaseCache

    cache = CaseCache(cache_folder)
    spec = LoaderSpec(cache_folder, tuple(cache.ids("labeled")), tuple(cache.ids("unlabeled")), 64, 3, 2, 3, 0.34)
    first = list(epoch_loader(spec, PromptBank(), 2, seed=5, epoch=1))
    again = list(epoch_loader(spec, PromptBank(), 2, seed=5, epoch=1))
    other = list(epoch_loader(spec, PromptBank(), 2, seed=5, epoch=2))
    assert all((a.x_l == b.x_l).all() and (a.x_w == b.x_w).all() for a, b in zip(first, again))
    assert not (first[0].x_l == other[0].x_l).all()
    b = first[0]
    assert b.x_l.shape == (3, 1, 64, 64) and b.y_l.shape == (3, 64, 64) and b.x_w.shape == (2, 1, 64, 64)
    assert (b.y_l[-1] > 0).any(), "the last third of the labeled batch is forced to contain foreground"
    assert b.prompts_u is not None and not b.prompts_u.valid.any(), "an empty bank gives no prompts"
