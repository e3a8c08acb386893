"""The process-group helpers in one process: joined only when torchrun started us, collectives as identity."""

import socket

import torch
import torch.distributed as dist

from sss_auto.training.distributed import (average_gradients, check_in_sync, gather_from_ranks, init_distributed,
                                           shutdown)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_plain_process_runs_alone(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.device, info.is_main) == (0, 1, "cpu", True)
    assert not dist.is_initialized()


def test_torchrun_with_one_process_joins_a_gloo_group_and_the_collectives_run(monkeypatch, caplog):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    caplog.set_level("INFO")
    try:
        info = init_distributed("cpu")
        assert dist.is_initialized() and (info.rank, info.world_size) == (0, 1)
        assert "joined the gloo process group: rank 0 of 1 on cpu" in caplog.text
        layer = torch.nn.Linear(3, 2)
        layer(torch.ones(1, 3)).sum().backward()
        before = [p.grad.clone() for p in layer.parameters()]
        average_gradients(list(layer.parameters()))
        assert all(torch.equal(a, p.grad) for a, p in zip(before, layer.parameters()))
        assert gather_from_ranks({"case": 1}) == [{"case": 1}]
        check_in_sync(layer)
    finally:
        shutdown()
    assert not dist.is_initialized()
