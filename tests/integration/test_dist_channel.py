"""``DistChannel`` on 2 spawned ranks (gloo): every kind of message arrives as sent, and a
wire whose messages keep their shapes costs one transfer per message."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import torch

from beyond_backprop.engines.messages import DistChannel
from tests.integration.staged_harness import spawn


def messages() -> list[Any]:
    """What rank 0 sends, in order: tensors (every dtype, 0-d, empty, non-contiguous), named
    messages (empty, several entries), then STOP."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=generator)
    return [
        x,
        x + 1,  # same shape: no resize
        torch.randn(2, 5, generator=generator).t(),  # non-contiguous, new shape
        torch.tensor(3.5, dtype=torch.float64),
        torch.zeros(0, 7),
        torch.tensor([[True, False, True]]),
        torch.arange(6, dtype=torch.int64).view(1, 2, 3),
        torch.randn(3, generator=generator).to(torch.bfloat16),
        torch.randn(2, 2, generator=generator).half(),
        torch.arange(5, dtype=torch.uint8),
        {},
        {"grad": x * 2, "mask": torch.tensor([False, True]), "é": torch.ones(1, 1, 1, 1, 1, 1, 1)},
        {"grad": x * 3, "mask": torch.tensor([True, True]), "é": torch.zeros(1, 1, 1, 1, 1, 1, 1)},
        None,
    ]


def exchange(rank: int) -> Any:
    channel = DistChannel(rank)
    if rank == 0:
        for message in messages():
            if message is None:
                channel.send_stop(1)
            elif isinstance(message, dict):
                channel.send_named(message, 1)
            else:
                channel.send(message, 1)
        counts = [channel.transfers]
        for step in range(5):  # a steady wire: the same layout every step
            channel.send_named({"error": torch.full((8, 10), float(step))}, 1)
            counts.append(channel.transfers)
        channel.flush()
        return counts
    received: list[Any] = []
    for message in messages():
        got = channel.recv(1 - rank)
        if isinstance(message, dict):
            assert got is not None
            got = channel.recv_named_body(1 - rank, int(got[0]))
        received.append(got)
    steady = [channel.recv_named(0)["error"] for _ in range(5)]
    return received, steady


def test_every_message_arrives_as_sent_and_a_steady_wire_costs_one_transfer(
    tmp_path: Path,
) -> None:
    outcomes = spawn(tmp_path, exchange)
    assert all(o["ok"] for o in outcomes), outcomes
    counts = outcomes[0]["result"]
    received, steady = outcomes[1]["result"]
    for sent, got in zip(messages(), received, strict=True):
        if sent is None:
            assert got is None
        elif isinstance(sent, dict):
            assert sorted(got) == sorted(sent)
            for name, tensor in sent.items():
                assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor)
        else:
            assert got.dtype == sent.dtype and got.shape == sent.shape
            assert torch.equal(got, sent)
    assert [float(e[0, 0]) for e in steady] == [0.0, 1.0, 2.0, 3.0, 4.0]
    # the first steady message changes the frame's size (one resize), the others do not
    assert [b - a for a, b in pairwise(counts)] == [2, 1, 1, 1, 1]
