"""The slice memory of the volumetric configuration: bank rules on hand-made entries, SAM-2's modules around them."""

import pytest
import torch

from sss_auto.networks.memory import MemoryBank, MemoryConditioner

MEM = 4  # memory channels of the hand-made entries


def _entry(value: float, batch: int = 1):
    """Memory features filled with `value` (to tell entries apart), their position, and nothing else."""
    return torch.full((batch, MEM, 2, 2), value), torch.zeros(batch, MEM, 2, 2)


def _key(*values: float) -> torch.Tensor:
    return torch.tensor([values], dtype=torch.float32)


def _stored(bank: MemoryBank, clip: int = 0) -> list[float]:
    """The entries of a clip by their fill value, in bank order."""
    return [float(s.features[0, 0, 0]) for s in bank.clips[clip]]


def _add(bank: MemoryBank, value: float, key: torch.Tensor, quality: float, index: int, conditioning: bool = False):
    features, pos = _entry(value)
    bank.add(features, pos, key, torch.tensor([quality]), [index], conditioning)


def test_fifo_keeps_and_reads_the_most_recent_and_always_the_prompt_slice():
    bank = MemoryBank(1, capacity=2, policy="fifo")
    _add(bank, 0.0, _key(1, 0), 1.0, 10, conditioning=True)
    for value, index in ((1.0, 11), (2.0, 12), (3.0, 13)):
        _add(bank, value, _key(0, 1), 0.1, index)
    assert _stored(bank) == [0.0, 2.0, 3.0], "the oldest entry went, the prompt slice stayed"
    read = bank.read(_key(1, 0), [14], num=1)
    assert read.features[0, :, 0, 0, 0].tolist() == [0.0, 3.0]
    assert read.distance.tolist() == [[0, 1]], "the prompt slice has distance 0, as SAM-2's conditioning frames"


def test_self_sorting_replaces_a_look_alike_unless_the_newcomer_is_clearly_worse():
    bank = MemoryBank(1, capacity=2, policy="self_sorting", quality_margin=0.1)
    _add(bank, 1.0, _key(1, 0, 0), 0.5, 1)
    _add(bank, 2.0, _key(0, 1, 0), 0.5, 2)
    _add(bank, 3.0, _key(1, 0.05, 0), 0.45, 3)  # like entry 1, quality within the margin: replaces it
    assert _stored(bank) == [3.0, 2.0]
    _add(bank, 4.0, _key(1, 0.05, 0), 0.2, 4)  # like entry 3 but much worse: dropped
    assert _stored(bank) == [3.0, 2.0]


def test_self_sorting_lets_a_distinct_newcomer_replace_the_worse_of_the_two_most_alike():
    bank = MemoryBank(1, capacity=3, policy="self_sorting")
    _add(bank, 1.0, _key(1, 0, 0), 0.9, 1)
    _add(bank, 2.0, _key(0.9, 0.1, 0), 0.3, 2)  # nearly a copy of entry 1, and worse
    _add(bank, 3.0, _key(0, 1, 0), 0.9, 3)
    _add(bank, 4.0, _key(0, 0, 1), 0.5, 4)  # resembles none: the worse of the redundant pair (2) goes
    assert _stored(bank) == [1.0, 4.0, 3.0]
    _add(bank, 5.0, _key(-1, 0, 0.01), 0.0, 5)  # distinct but worse than every candidate: dropped
    assert _stored(bank) == [1.0, 4.0, 3.0]


def test_reading_prefers_similar_entries_deterministically_and_resamples_by_similarity_in_training():
    bank = MemoryBank(1, capacity=3, policy="self_sorting", temperature=0.05)
    for value, key in ((1.0, _key(1, 0)), (2.0, _key(0, 1)), (3.0, _key(-1, 0))):
        _add(bank, value, key, 1.0, int(value))
    query = _key(0.1, 1)
    assert bank.read(query, [9], num=1).features[0, :, 0, 0, 0].tolist() == [2.0]
    drawn = bank.read(query, [9], num=200, generator=torch.Generator().manual_seed(0), sample=True)
    picked = drawn.features[0, :, 0, 0, 0]
    assert picked.shape == (200,) and (picked == 2.0).float().mean() > 0.9, "similar entries are drawn most"
    assert set(picked.tolist()) <= {1.0, 2.0, 3.0}


def test_every_clip_of_a_batch_keeps_its_own_entries_and_an_empty_bank_reads_nothing():
    bank = MemoryBank(2, capacity=1, policy="fifo")
    assert bank.read(torch.ones(2, 2), [0, 0], num=3) is None
    features = torch.stack([torch.full((MEM, 2, 2), 1.0), torch.full((MEM, 2, 2), 2.0)])
    bank.add(features, torch.zeros_like(features), torch.eye(2), torch.ones(2), [3, 7])
    read = bank.read(torch.eye(2), [5, 5], num=1)
    assert read.features[:, 0, 0, 0, 0].tolist() == [1.0, 2.0] and read.distance.tolist() == [[2], [2]]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="policy must be one of fifo, self_sorting"):
        MemoryBank(1, 2, policy="lru")
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        MemoryBank(1, 0)


@pytest.fixture(scope="module")
def conditioner():
    from sss_auto.networks.sam2_parts import build_sam2_parts

    torch.manual_seed(0)
    return MemoryConditioner(build_sam2_parts("test", 64))


def test_sam2_memory_modules_write_and_read_a_slice_memory(conditioner):
    features = torch.randn(2, 256, 4, 4)
    assert torch.equal(conditioner.condition(features, None), features), "no memory: the 2d network's features"
    memory, pos = conditioner.remember(features, torch.rand(2, 1, 64, 64))
    assert memory.shape == pos.shape == (2, conditioner.maskmem_tpos_enc.shape[-1], 4, 4)
    bank = MemoryBank(2, capacity=4)
    bank.add(memory, pos, features.mean((2, 3)), torch.ones(2), [0, 0], conditioning=True)
    bank.add(memory, pos, features.mean((2, 3)), torch.ones(2), [1, 1])
    far = bank.read(features.mean((2, 3)), [50, 50], num=1)  # beyond SAM-2's temporal positions: clipped
    out = conditioner.condition(features.requires_grad_(), far)
    assert out.shape == features.shape and not torch.allclose(out, features)
    out.square().mean().backward()
    assert features.grad is not None and conditioner.memory_attention.layers[0].cross_attn_image.q_proj.weight.grad is not None
