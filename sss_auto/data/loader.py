"""Training batches assembled in background workers: labeled slices with GT prompts, weak unlabeled views with bank prompts
(or, for `2d_memory`, clips of consecutive slices prompted on their first slice).

Each epoch gets a fresh, seeded stream: worker w of rank r in epoch e draws from
default_rng([seed, e, r, w]) (and seeds numpy's and Python's global generators, which
batchgenerators uses, from the same numbers), so a run resumed at an epoch boundary sees exactly
the same batches.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from sss_auto.data import augment
from sss_auto.data.batch import ClipBatch, TrainBatch
from sss_auto.data.cache import CaseCache
from sss_auto.data.clips import augment_clips, clip_slices, crop_clip
from sss_auto.data.pseudo_label_pool import PseudoLabelPool
from sss_auto.data.sampling import choose_slice_and_center, crop_slice
from sss_auto.errors import SSSError
from sss_auto.networks.prompts import Prompts
from sss_auto.prompting.bank import PromptBank
from sss_auto.prompting.from_masks import prompts_from_label_maps

PROMPT_DROP_PROBABILITY = 0.2


@dataclass(frozen=True, kw_only=True)
class LoaderSpec:
    """What to sample: cases, patch side, batch sizes (unlabeled 0 = supervised only), oversampling."""

    cache_folder: Path
    labeled_ids: tuple[str, ...]
    unlabeled_ids: tuple[str, ...]
    patch: int
    batch_labeled: int
    batch_unlabeled: int
    num_foreground: int
    foreground_oversampling: float = 0.33
    clip_length: int = 0  # > 0: clips of this many consecutive slices (2d_memory; make_clip_batch)
    pseudo_labels: PseudoLabelPool | None = None  # offline self-training: unlabeled slices come with these labels


def unlabeled_shard(case_ids: tuple[str, ...], seed: int, epoch: int, rank: int, world_size: int) -> tuple[str, ...]:
    """The unlabeled cases rank `rank` samples from in `epoch`: a share of a per-epoch shuffle of the pool.

    Under torchrun the ranks' shards partition the pool, reshuffled every epoch (the same shuffle on
    every rank), so ranks do not draw the same volumes and each rank's loader opens only its share;
    over epochs every rank sees the whole pool. One process keeps the whole pool, in order.
    """
    if world_size <= 1:
        return tuple(case_ids)
    order = np.random.default_rng([seed, epoch, 7919]).permutation(len(case_ids))
    return tuple(case_ids[i] for i in order[rank::world_size])


def labelled_windows(spec: LoaderSpec, cache: CaseCache, rng: np.random.Generator, case_ids: tuple[str, ...],
                     count: int, pool: PseudoLabelPool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`count` windows (images, labels) of slices of random cases, the last share (foreground_oversampling) centred
    on foreground: the ground truth, or with a `pool` its pseudo labels and their foreground."""
    size = augment.sampling_size(spec.patch)
    images, labels = [], []
    first_forced = int(round(count * (1 - spec.foreground_oversampling)))
    for index in range(count):
        case_id = case_ids[rng.integers(len(case_ids))]
        volume = cache.load(case_id)
        if pool is not None:
            volume = replace(volume, foreground=pool.foreground(case_id))
        z, y, x = choose_slice_and_center(volume, rng, force_foreground=index >= first_forced)
        label = np.asarray(volume.seg[z]) if pool is None else pool.slice_labels(case_id, z)
        image, label = crop_slice(np.asarray(volume.data[:, z]), label, (y, x), size, rng)
        images.append(image)
        labels.append(label)
    return np.stack(images), np.stack(labels)


def make_batch(spec: LoaderSpec, cache: CaseCache, bank: PromptBank, rng: np.random.Generator,
               transform) -> TrainBatch:
    """Sample, augment and prompt one batch (runs in a loader worker)."""
    size = augment.sampling_size(spec.patch)
    x_l, y_l = augment.apply(transform, *labelled_windows(spec, cache, rng, spec.labeled_ids, spec.batch_labeled))
    prompts_l = prompts_from_label_maps(y_l, spec.num_foreground, rng, PROMPT_DROP_PROBABILITY)
    x_w = prompts_u = None
    if spec.batch_unlabeled and spec.unlabeled_ids and spec.pseudo_labels is not None:
        x_u, y_u, prompts_u = pseudo_labelled_slices(spec, cache, rng, transform)
        return TrainBatch(torch.from_numpy(x_l), torch.from_numpy(y_l), prompts_l, x_u, prompts_u, y_u)
    if spec.batch_unlabeled and spec.unlabeled_ids:
        images, objects = [], []
        for _ in range(spec.batch_unlabeled):
            case_id = spec.unlabeled_ids[rng.integers(len(spec.unlabeled_ids))]
            volume = cache.load(case_id)
            z, y, x = choose_slice_and_center(volume, rng, force_foreground=False)
            kept = bank.slice_labels(case_id, z, volume.data.shape[2:])
            image, kept = crop_slice(np.asarray(volume.data[:, z]), kept, (y, x), size, rng)
            images.append(image)
            objects.append(kept)
        x_w_np, objects_w = augment.apply(transform, np.stack(images), np.stack(objects))
        x_w = torch.from_numpy(x_w_np)
        prompts_u = prompts_from_label_maps(objects_w, spec.num_foreground)
    return TrainBatch(torch.from_numpy(x_l), torch.from_numpy(y_l), prompts_l, x_w, prompts_u)


def pseudo_labelled_slices(spec: LoaderSpec, cache: CaseCache, rng: np.random.Generator,
                           transform) -> tuple[torch.Tensor, torch.Tensor, Prompts]:
    """Unlabeled slices with their pseudo labels (IGNORE kept), sampled and augmented as labeled slices are."""
    x_u, y_u = augment.apply(transform, *labelled_windows(spec, cache, rng, spec.unlabeled_ids, spec.batch_unlabeled,
                                                          spec.pseudo_labels))
    prompts_u = prompts_from_label_maps(y_u, spec.num_foreground, rng, PROMPT_DROP_PROBABILITY)
    return torch.from_numpy(x_u), torch.from_numpy(y_u), prompts_u


def make_clip_batch(spec: LoaderSpec, cache: CaseCache, bank: PromptBank, rng: np.random.Generator,
                    transform) -> ClipBatch:
    """Sample, augment and prompt one batch of clips (runs in a loader worker).

    A clip starts at its prompt slice (data/clips.py `clip_slices`): for labeled clips a slice drawn as the
    2d loader draws one (foreground oversampled), prompted with its jittered ground truth; for unlabeled
    clips a uniform slice, prompted with the PCSW bank's objects on it. The later slices carry no prompt.
    """
    size = augment.sampling_size(spec.patch)

    def clips(case_ids: tuple[str, ...], count: int, forced_from: int, labels_of) -> tuple[np.ndarray, ...]:
        images, labels, indices = [], [], []
        for index in range(count):
            case_id = case_ids[rng.integers(len(case_ids))]
            volume = cache.load(case_id)
            z, y, x = choose_slice_and_center(volume, rng, force_foreground=index >= forced_from)
            slices = clip_slices(volume.data.shape[1], spec.clip_length, z, rng)
            image, label = crop_clip(volume.data, slices, labels_of(case_id, volume, slices), (y, x), size, rng)
            images.append(image)
            labels.append(label)
            indices.append(slices)
        x_np, y_np = augment_clips(transform, np.stack(images), np.stack(labels))
        return x_np, y_np, np.stack(indices)

    def ground_truth(_case_id, volume, slices):
        return np.asarray(volume.seg[slices])

    def bank_objects(case_id, volume, slices):
        return np.stack([bank.slice_labels(case_id, int(z), volume.data.shape[2:]) for z in slices])

    first_forced = int(round(spec.batch_labeled * (1 - spec.foreground_oversampling)))
    x_l, y_l, index_l = clips(spec.labeled_ids, spec.batch_labeled, first_forced, ground_truth)
    prompts_l = prompts_from_label_maps(y_l[:, 0], spec.num_foreground, rng, PROMPT_DROP_PROBABILITY)
    batch = ClipBatch(torch.from_numpy(x_l), torch.from_numpy(y_l), prompts_l, torch.from_numpy(index_l))
    if spec.batch_unlabeled and spec.unlabeled_ids:
        x_w, objects, index_u = clips(spec.unlabeled_ids, spec.batch_unlabeled, spec.batch_unlabeled, bank_objects)
        batch = replace(batch, x_w=torch.from_numpy(x_w), index_u=torch.from_numpy(index_u),
                        prompts_u=prompts_from_label_maps(objects[:, 0], spec.num_foreground))
    return batch


class EpochBatches(IterableDataset):
    """`iterations` batches of one epoch, shared out over the loader's workers."""

    def __init__(self, spec: LoaderSpec, bank: PromptBank, iterations: int, seed: int, epoch: int, rank: int = 0) -> None:
        super().__init__()
        self.spec, self.bank, self.iterations = spec, bank, iterations
        self.seed, self.epoch, self.rank = seed, epoch, rank

    def __iter__(self) -> Iterator[TrainBatch | ClipBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        seed_sequence = [self.seed, self.epoch, self.rank, worker]
        rng = np.random.default_rng(seed_sequence)
        global_seed = int(np.random.SeedSequence(seed_sequence).generate_state(1)[0])
        np.random.seed(global_seed)  # batchgenerators draws from numpy's global generator ...
        random.seed(global_seed)  # ... and, for noise and blur strengths, from Python's
        cache = CaseCache(self.spec.cache_folder)
        transform = augment.spatial_and_intensity(self.spec.patch)
        make = make_clip_batch if self.spec.clip_length else make_batch
        for _ in range(worker, self.iterations, workers):
            yield make(self.spec, cache, self.bank, rng, transform)


def iterate_safely(loader: DataLoader) -> Iterator[TrainBatch]:
    """Iterate a loader; a worker process that dies becomes an SSSError that says what to do."""
    try:
        yield from loader
    except RuntimeError as err:
        if "DataLoader worker" not in str(err):
            raise
        raise SSSError(f"a data-loading worker process died ({str(err).splitlines()[0]}), often out of memory; "
                       "continue with --c and fewer --num-workers") from err


def epoch_loader(spec: LoaderSpec, bank: PromptBank, iterations: int, seed: int, epoch: int, rank: int = 0,
                 num_workers: int = 1, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over one epoch's batches (order deterministic for a given number of workers)."""
    return DataLoader(EpochBatches(spec, bank, iterations, seed, epoch, rank), batch_size=None,
                      num_workers=num_workers, pin_memory=pin_memory, prefetch_factor=2 if num_workers else None)
