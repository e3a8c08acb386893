import numpy as np
import pytest
import torch

from sss_auto.data.cache import CaseCache
from sss_auto.data.loader import LoaderSpec, epoch_loader
from sss_auto.data.pseudo_label_pool import IGNORE, INDEX, load_pool
from sss_auto.inference.settings import InferenceSettings
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet
from sss_auto.prompting.bank import PromptBank
from sss_auto.training.pseudo_labelling import label_pool


def _network(logits: list[float]) -> SSSNet:
    """A test network whose coarse head gives these logits everywhere."""
    torch.manual_seed(0)
    network = SSSNet(ModelConfig(1, 4, 64, "test"))
    last = network.coarse_head.out[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(logits))
    return network


def test_the_pool_is_written_with_its_index_last_and_read_back_with_thresholds(cache_folder, tmp_path):
    cache = CaseCache(cache_folder)
    ids = cache.ids("unlabeled")
    network = _network([0.0, 3.0, 0.0, 0.0])  # class 1 everywhere, p ≈ 0.87
    folder = tmp_path / "pseudo_labels"
    pool, metrics = label_pool(network, cache, ids, InferenceSettings(patch=64, tta=False), {}, folder, 0.95, "class_adaptive", 4,
                               show_progress=False)
    assert network.training, "the network is handed back in train mode"
    assert load_pool(folder) == pool and pool.epoch == 4 and (folder / INDEX).is_file()
    assert pool.thresholds[1] == pytest.approx(0.95), "the only class predicted is the most confident one: τ"
    assert metrics["plc_1"] == 0.0 and metrics["pool_cases_1"] == 0, "0.87 < 0.95: nothing passes"
    labels = pool.volume_labels(ids[0])
    assert labels.dtype == np.int16 and (labels == IGNORE).all()
    assert labels.shape == cache.load(ids[0]).data.shape[1:]

    pool, metrics = label_pool(network, cache, ids, InferenceSettings(patch=64, tta=False), {}, folder, 0.8, "class_adaptive", 5,
                               show_progress=False)
    assert metrics["plc_1"] == 1.0 and metrics["pool_cases_1"] == len(ids) and metrics["pool_s"] > 0
    assert (pool.slice_labels(ids[0], 0) == 1).all()
    assert (pool.foreground(ids[0])[:, 0] == 1).all() and len(pool.foreground(ids[0]))

    unready = np.array([False, True, False, False])
    pool, metrics = label_pool(network, cache, ids, InferenceSettings(patch=64, tta=False), {}, folder, 0.8, "class_adaptive", 6,
                               unready, np.zeros(4), show_progress=False)
    assert metrics["plc_1"] == 0.0 and len(pool.foreground(ids[0])) == 0, "an unready class is never a pseudo label"


def test_an_interrupted_pool_has_no_index_and_is_not_loaded(cache_folder, tmp_path):
    cache = CaseCache(cache_folder)
    folder = tmp_path / "pseudo_labels"
    label_pool(_network([0.0, 3.0, 0.0, 0.0]), cache, cache.ids("unlabeled"), InferenceSettings(patch=64, tta=False), {},
               folder, 0.8, "class_adaptive", 1, show_progress=False)

    class Broken(SSSNet):
        def forward(self, *args, **kwargs):
            raise RuntimeError("killed")

    broken = _network([0.0, 3.0, 0.0, 0.0])
    broken.__class__ = Broken
    with pytest.raises(RuntimeError, match="killed"):
        label_pool(broken, cache, cache.ids("unlabeled"), InferenceSettings(patch=64, tta=False), {}, folder, 0.8, "class_adaptive", 2,
                   show_progress=False)
    assert load_pool(folder) is None, "the old index went first: a half-made pool is never read"


def test_the_loader_serves_pseudo_labelled_slices_with_their_ignored_pixels(cache_folder, tmp_path):
    cache = CaseCache(cache_folder)
    ids = cache.ids("unlabeled")
    pool, _ = label_pool(_network([0.0, 3.0, 0.0, 0.0]), cache, ids, InferenceSettings(patch=64, tta=False), {},
                         tmp_path / "pseudo_labels", 0.8, "class_adaptive", 1, show_progress=False)
    spec = LoaderSpec(cache_folder=cache_folder, labeled_ids=tuple(cache.ids("labeled")), unlabeled_ids=tuple(ids),
                      patch=64, batch_labeled=2, batch_unlabeled=3, num_foreground=3, pseudo_labels=pool)
    batch = next(iter(epoch_loader(spec, PromptBank(), 1, seed=0, epoch=0)))
    assert batch.x_w.shape == (3, 1, 64, 64) and batch.y_u.shape == (3, 64, 64) and batch.y_u.dtype == torch.int64
    assert set(batch.y_u.unique().tolist()) <= {0, 1}, "class 1 inside the volume, background padding outside"
    assert (batch.y_u == 1).any() and batch.prompts_u.valid[:, 0].any()
    again = next(iter(epoch_loader(spec, PromptBank(), 1, seed=0, epoch=0)))
    assert torch.equal(again.y_u, batch.y_u) and torch.equal(again.x_w, batch.x_w)

    strict = load_pool(pool.folder).__class__(pool.folder, (0.95, 0.95, 0.95, 0.95), pool.epoch)
    spec = LoaderSpec(**{**spec.__dict__, "pseudo_labels": strict})
    batch = next(iter(epoch_loader(spec, PromptBank(), 1, seed=0, epoch=0)))
    assert (batch.y_u == IGNORE).any() and not (batch.y_u == 1).any(), "below the threshold: ignored, not background"
