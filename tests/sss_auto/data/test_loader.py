import os

import torch

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


def test_batches_are_reproducible_per_epoch_and_oversample_foreground(cache_folder):
    from sss_auto.data.cache import CaseCache

    cache = CaseCache(cache_folder)
    spec = LoaderSpec(cache_folder=cache_folder, labeled_ids=tuple(cache.ids("labeled")),
                      unlabeled_ids=tuple(cache.ids("unlabeled")), patch=64, batch_labeled=3, batch_unlabeled=2,
                      num_foreground=3, foreground_oversampling=0.34)
    first = list(epoch_loader(spec, PromptBank(), 2, seed=5, epoch=1))
    again = list(epoch_loader(spec, PromptBank(), 2, seed=5, epoch=1))
    other = list(epoch_loader(spec, PromptBank(), 2, seed=5, epoch=2))
    assert all((a.x_l == b.x_l).all() and (a.x_w == b.x_w).all() for a, b in zip(first, again))
    assert not (first[0].x_l == other[0].x_l).all()
    b = first[0]
    assert b.x_l.shape == (3, 1, 64, 64) and b.y_l.shape == (3, 64, 64) and b.x_w.shape == (2, 1, 64, 64)
    assert (b.y_l[-1] > 0).any(), "the last third of the labeled batch is forced to contain foreground"
    assert b.prompts_u is not None and not b.prompts_u.valid.any(), "an empty bank gives no prompts"


def test_cache_verification_hashes_new_or_changed_arrays_and_detects_an_altered_file(cache_folder):
    from sss_auto.data.cache import CaseCache
    from sss_auto.errors import CacheError

    cache = CaseCache(cache_folder)
    ids = cache.ids("labeled") + cache.ids("unlabeled")
    arrays = sum(len(cache.entries[i].arrays) for i in ids)
    assert cache.verify(ids, progress=False) == arrays  # first start: everything hashed
    assert cache.verify(ids, progress=False) == 0  # unchanged since: nothing hashed again
    assert cache.verify(ids, progress=False, rehash_all=True) == arrays

    altered = cache_folder / f"{ids[0]}.npy"
    raw = bytearray(altered.read_bytes())
    raw[-3] ^= 0xFF
    altered.write_bytes(bytes(raw))  # rewritten: new modification time
    with pytest.raises(CacheError, match=f"{ids[0]}.npy: content differs"):
        cache.verify(ids, progress=False)


def test_the_cache_reads_a_case_entry_only_when_the_case_is_used(cache_folder, tmp_path):
    """A loader worker opening the cache must not read every entry of a large pool (benchmarks/scale.py)."""
    import shutil

    from sss_auto.data.cache import CaseCache
    from sss_auto.errors import CacheError

    folder = tmp_path / "2d"
    shutil.copytree(cache_folder, folder)
    ids = sorted(p.stem for p in folder.glob("*.json"))
    (folder / f"{ids[-1]}.json").write_text("{not json")  # only ids() and using that case may notice
    cache = CaseCache(folder)
    assert cache._entries == {}, "opening the cache reads no entry"
    assert cache.load(ids[0]).data.ndim == 4
    assert list(cache._entries) == [ids[0]]
    with pytest.raises(CacheError, match=f"{ids[-1]}.json: unreadable cache entry"):
        cache.ids("labeled")  # what sss_train calls at start-up: every entry is read there
    with pytest.raises(CacheError, match="'missing' is not preprocessed"):
        cache.load("missing")


def test_unlabeled_shards_partition_the_pool_per_epoch_and_one_process_keeps_it_whole():
    from sss_auto.data.loader import unlabeled_shard

    pool = tuple(f"unl_{i:03d}" for i in range(11))
    assert unlabeled_shard(pool, 0, 3, 0, 1) == pool
    shards = [unlabeled_shard(pool, 0, 3, rank, 4) for rank in range(4)]
    assert sorted(c for shard in shards for c in shard) == sorted(pool) and {len(s) for s in shards} == {2, 3}
    assert shards == [unlabeled_shard(pool, 0, 3, rank, 4) for rank in range(4)], "every rank computes the same split"
    assert unlabeled_shard(pool, 0, 4, 0, 4) != shards[0], "reshuffled every epoch"


def test_clip_batches_are_consecutive_slices_prompted_on_their_first_slice_only(cache_folder):
    import numpy as np

    from sss_auto.data.batch import ClipBatch
    from sss_auto.data.cache import CaseCache
    from sss_auto.prompting.bank import StoredObjects

    cache = CaseCache(cache_folder)
    unlabeled = tuple(cache.ids("unlabeled"))
    bank = PromptBank()
    for case_id in unlabeled:  # an object on every slice: each unlabeled clip's first slice gets a prompt
        objects = np.zeros(cache.load(case_id).data.shape[1:], np.uint8)
        objects[:, 10:30, 10:30] = 1
        bank.objects[case_id] = StoredObjects.from_volume(objects)
    spec = LoaderSpec(cache_folder=cache_folder, labeled_ids=tuple(cache.ids("labeled")), unlabeled_ids=unlabeled,
                      patch=64, batch_labeled=3, batch_unlabeled=2, num_foreground=3, clip_length=3)
    first = list(epoch_loader(spec, bank, 2, seed=5, epoch=1))
    again = list(epoch_loader(spec, bank, 2, seed=5, epoch=1))
    assert all(torch.equal(a.x_l, b.x_l) and torch.equal(a.x_w, b.x_w) for a, b in zip(first, again))
    b = first[0]
    assert isinstance(b, ClipBatch)
    assert b.x_l.shape == (3, 3, 1, 64, 64) and b.y_l.shape == (3, 3, 64, 64) and b.x_w.shape == (2, 3, 1, 64, 64)
    assert b.index_l.shape == (3, 3) and b.index_u.shape == (2, 3)
    steps = torch.diff(torch.cat([b.index_l, b.index_u]), dim=1)
    assert bool((steps.abs() <= 1).all()), "consecutive slices (an end slice repeats only in a short volume)"
    assert bool((b.y_l[-1, 0] > 0).any()), "the forced labeled clip starts at a foreground slice"
    assert bool(b.prompts_l.valid[-1].any()) and b.prompts_u.valid[:, 0].all(), "first slices are prompted"
    assert b.x_s is None, "the strong clip is made in the training step"
