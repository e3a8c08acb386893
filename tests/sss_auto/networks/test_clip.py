"""A clip through the slice memory: the prompt slice as the 2d network, later slices through memory, inference order."""

import pytest
import torch

from sss_auto.networks.clip import propagation_passes, segment_clip
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.memory import MemoryBank
from sss_auto.networks.model import SSSNet
from sss_auto.networks.prompts import Prompts


def _prompts(batch: int) -> Prompts:
    prompts = Prompts.empty(batch, 2)
    prompts.valid[:, 0] = True
    prompts.boxes[:, 0] = torch.tensor([10.0, 12.0, 40.0, 44.0])
    prompts.points[:, 0] = torch.tensor([25.0, 28.0])
    return prompts


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    plain = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=())).eval()
    torch.manual_seed(0)
    memory = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(), memory_frames=2)).eval()
    with torch.no_grad():
        memory.memory.gate.fill_(1.0)  # as with SAM-2 weights: the memory attention's output in full
    return plain, memory


def test_without_memory_every_slice_is_the_2d_network(nets):
    plain, _ = nets
    clip = torch.randn(2, 3, 1, 64, 64)
    with torch.no_grad():
        outputs = segment_clip(plain, clip, _prompts(2), torch.arange(3).repeat(2, 1))
        expected = [plain(clip[:, 0], _prompts(2))] + [plain(clip[:, t]) for t in (1, 2)]
    for out, ref in zip(outputs, expected):
        torch.testing.assert_close(out.fused, ref.fused)
    assert not torch.equal(outputs[0].fused, outputs[0].coarse), "the prompt slice is refined with its prompts"


def test_with_memory_the_prompt_slice_is_the_2d_network_and_later_slices_read_the_bank(nets):
    plain, memory = nets
    assert memory.memory is not None and plain.memory is None
    assert len(memory.memory.memory_attention.layers) == 1, "the test variant's memory is reduced as its Hiera is"
    for name, weight in plain.state_dict().items():  # the memory modules add weights; the rest is the same network
        if name == "memory.gate":
            continue
        torch.testing.assert_close(memory.state_dict()[name], weight)
    clip = torch.randn(2, 4, 1, 64, 64)
    bank = MemoryBank(2, capacity=2, policy="fifo")
    with torch.no_grad():
        outputs = segment_clip(memory, clip, _prompts(2), torch.arange(10, 14).repeat(2, 1), bank)
        first = plain(clip[:, 0], _prompts(2))
        second = plain(clip[:, 1])
    assert [o.fused.shape for o in outputs] == [(2, 3, 64, 64)] * 4
    torch.testing.assert_close(outputs[0].fused, first.fused)
    assert not torch.allclose(outputs[1].fused, second.fused), "slice 1 attends to the prompt slice's memory"
    assert len(bank) == 3 and [s.slice_index for s in bank.clips[0]] == [10, 11, 12], \
        "prompt slice + the 2 latest (the clip's last slice is not remembered: nothing would read it)"


def test_a_loss_on_a_later_slice_trains_the_memory_modules(nets):
    _, memory = nets
    memory.train()
    try:
        outputs = segment_clip(memory, torch.randn(1, 2, 1, 64, 64), None, torch.tensor([[0, 1]]), sample=True,
                               generator=torch.Generator().manual_seed(0))
        memory.zero_grad()
        outputs[1].fused.square().mean().backward()
        grads = {name: p.grad for name, p in memory.memory.named_parameters()}
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("memory_encoder"))
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("memory_attention"))
    finally:
        memory.eval()


def test_inference_propagates_from_the_prompt_slice_in_both_directions():
    assert propagation_passes(5, 2) == [[2, 3, 4], [2, 1, 0]]
    assert propagation_passes(5, 0) == [[0, 1, 2, 3, 4]]
    assert propagation_passes(5, 4) == [[4], [4, 3, 2, 1, 0]]
    with pytest.raises(ValueError, match="prompt slice 5 is outside a volume of 5 slices"):
        propagation_passes(5, 5)


def test_from_random_weights_the_gate_starts_at_0_so_the_clip_is_the_2d_network_and_the_gate_learns_first(nets):
    plain, _ = nets
    torch.manual_seed(0)
    fresh = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(), memory_frames=2))
    assert float(fresh.memory.gate.detach()) == 0.0 and fresh.memory.gate_values() == {"memory_gate": 0.0}
    clip = torch.randn(1, 3, 1, 64, 64)
    fresh.eval()
    with torch.no_grad():
        outputs = segment_clip(fresh, clip, None, torch.tensor([[0, 1, 2]]))
        for t, out in enumerate(outputs):
            torch.testing.assert_close(out.fused, plain(clip[:, t]).fused)
    fresh.train()
    outputs = segment_clip(fresh, clip, None, torch.tensor([[0, 1, 2]]), sample=True,
                           generator=torch.Generator().manual_seed(0))
    outputs[2].fused.square().mean().backward()
    assert float(fresh.memory.gate.grad.abs()) > 0, "the gate gets a gradient at 0 and opens if memory helps"
    ungated = SSSNet(ModelConfig(1, 3, 64, "test", dfe_levels=(), memory_frames=2, memory_gate=False))
    assert ungated.memory.gate is None and ungated.memory.gate_values() == {}
