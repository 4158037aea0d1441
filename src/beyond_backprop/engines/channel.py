"""``Channel``: messages between the stages of a staged run, and an in-process fake of it.

A schedule talks to other stages only through a ``Channel``: tensors sent point to point
(non-blocking sends, blocking receives), named messages (a rule's ``outbox``) as a count
followed by (name, tensor) pairs, and a STOP marker. ``DistChannel`` (``engines.messages``)
carries them over ``torch.distributed``; ``FakeChannel`` carries them between threads of one
process, so every schedule can be unit-tested on 2-4 fake stages without spawning processes
(message order, what is sent when, and deadlock-freedom: a receive that waits longer than the
fake's timeout raises instead of hanging).
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from beyond_backprop.errors import EXIT_RANK_FAILED, BeyondBackpropError


class StageError(BeyondBackpropError):
    """A stage lost contact with another (it died, hung past the timeout, or closed)."""

    exit_code = EXIT_RANK_FAILED


class Channel(ABC):
    """This rank's messages to and from the other ranks (transport left to subclasses)."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.wait_seconds = 0.0
        """Time spent blocked in ``recv``: idle time waiting for another stage."""
        self.waits: list[tuple[float, float]] | None = None
        """When a list (tracing on), every blocked ``recv`` as (start, end) perf_counter times."""

    @abstractmethod
    def send(self, tensor: Tensor, dst: int) -> None:
        """Queue ``tensor`` for rank ``dst`` (returns at once)."""

    @abstractmethod
    def send_stop(self, dst: int) -> None:
        """Tell ``dst`` that nothing more comes from this rank."""

    @abstractmethod
    def recv(self, src: int, track: bool = True) -> Tensor | None:
        """The next tensor from ``src``, or None when ``src`` sent STOP; ``track=False`` for
        receives off the training thread, whose waits are not the stage's idle time."""

    @abstractmethod
    def flush(self) -> None:
        """Wait until every queued send has completed."""

    def send_named(self, messages: dict[str, Tensor], dst: int) -> None:
        """Send a mapping of named tensors (possibly empty)."""
        # cpu: here and below, ``send`` moves what it sends to the channel's device
        self.send(torch.tensor([len(messages)], dtype=torch.int64), dst)
        for name, tensor in sorted(messages.items()):
            # cpu: the name's bytes, moved by ``send``
            self.send(torch.tensor(list(name.encode()), dtype=torch.uint8), dst)
            self.send(tensor, dst)

    def note_wait(self, started: float, ended: float) -> None:
        """Count ``ended - started`` as time the stage spent waiting for another."""
        self.wait_seconds += ended - started
        if self.waits is not None:
            self.waits.append((started, ended))

    def recv_required(self, src: int, track: bool = True) -> Tensor:
        """The next tensor from ``src``; STOP here is a protocol error."""
        tensor = self.recv(src, track)
        if tensor is None:
            raise StageError(f"stage {self.rank} expected a tensor from stage {src}, got STOP")
        return tensor

    def recv_named(self, src: int) -> dict[str, Tensor]:
        """A mapping sent by ``send_named``."""
        return self.recv_named_body(src, int(self.recv_required(src)[0]))

    def recv_named_body(self, src: int, count: int, track: bool = True) -> dict[str, Tensor]:
        """The ``count`` (name, tensor) pairs of a named message whose count was received."""
        messages = {}
        for _ in range(count):
            name = bytes(self.recv_required(src, track).tolist()).decode()
            messages[name] = self.recv_required(src, track)
        return messages


class FakeNetwork:
    """The wires between ``world_size`` fake ranks of one process: one FIFO per (src, dst).

    ``log`` records every send as (src, dst, what) in the order sends happened, where what is
    ``"stop"`` or the tensor's shape, so tests can check what a schedule sends when.
    """

    def __init__(self, world_size: int, timeout_s: float = 10.0) -> None:
        self.world_size = world_size
        self.timeout_s = timeout_s
        self.wires = {
            (s, d): queue.Queue[Tensor | None]()
            for s in range(world_size)
            for d in range(world_size)
            if s != d
        }
        self.log: list[tuple[int, int, object]] = []
        self._lock = threading.Lock()

    def channel(self, rank: int) -> FakeChannel:
        """Rank ``rank``'s end of the network."""
        return FakeChannel(rank, self)


class FakeChannel(Channel):
    """A ``Channel`` between threads of one process (see ``FakeNetwork``)."""

    def __init__(self, rank: int, network: FakeNetwork) -> None:
        super().__init__(rank)
        self.network = network

    def send(self, tensor: Tensor, dst: int) -> None:
        self._put(tensor.detach().clone(), dst, tuple(tensor.shape))

    def send_stop(self, dst: int) -> None:
        self._put(None, dst, "stop")

    def _put(self, item: Tensor | None, dst: int, what: object) -> None:
        with self.network._lock:
            self.network.log.append((self.rank, dst, what))
            self.network.wires[(self.rank, dst)].put(item)

    def recv(self, src: int, track: bool = True) -> Tensor | None:
        started = time.perf_counter()
        try:
            item = self.network.wires[(src, self.rank)].get(timeout=self.network.timeout_s)
        except queue.Empty:
            raise StageError(
                f"stage {self.rank} waited {self.network.timeout_s} s for stage {src}: deadlock"
            ) from None
        if track:
            self.note_wait(started, time.perf_counter())
        return item

    def flush(self) -> None:
        """Sends complete at once in-process."""
