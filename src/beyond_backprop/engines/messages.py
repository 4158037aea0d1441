"""``DistChannel``: point-to-point messages between stages over ``torch.distributed``, one
transfer each in the steady state.

Every message (a tensor, a named message, STOP) travels as one byte frame: three int64 words
(kind, entry count, index length), an int64 index holding each entry's dtype, shape and name,
then each entry's payload, 8-byte aligned. A gloo transfer costs about a quarter of a
millisecond of CPU on each side here whatever its size (with 16 stages on 2 cores that
decides whether the stages are CPU-bound), so the number of transfers is what matters, not
the bytes.

A receiver must post a buffer of the frame's exact size, which it cannot know (the last batch
of an epoch is smaller; a rule may send an error of the output's shape). Each wire (a pair of
ranks, one direction) therefore has an agreed frame size, at first that of a bare header, then
that of the last frame sent on it: the receiver posts a buffer of that size, and a sender
whose next frame has another size first sends a RESIZE frame of the agreed size naming the
new one. A wire whose messages keep their shapes (an activation every step, an error every
step) costs one transfer per message; a change of shape costs one more.

Sends are non-blocking (``isend``): a stage hands its output to the next stage and goes on
with its own work, which is what lets stages overlap. ``flush`` waits for what is still in
flight; the buffers stay referenced until then. Received tensors are views into their frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from beyond_backprop.engines.channel import Channel, StageError

T = TypeVar("T")
HEAD = 3
"""int64 words before the index: kind, entry count, index length."""
TENSOR, STOP, NAMED, RESIZE = 0, 1, 2, 3
ALIGN = 8
DTYPES = [
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8,
    torch.bool,  # travels as uint8 (not every backend sends bool), restored on arrival
]  # fmt: skip
Entry = tuple[str, int, list[int]]
"""An index entry: name, dtype code, shape."""


class DistChannel(Channel):
    """A ``Channel`` over ``torch.distributed`` point-to-point calls, with failures turned into
    ``StageError`` naming the peer stage."""

    def __init__(self, rank: int, device: torch.device | None = None) -> None:
        super().__init__(rank)
        self.device = device or torch.device("cpu")
        self.transfers = 0
        """Transfers sent so far (a message is one, plus one when its frame's size changes)."""
        self._in_flight: list[tuple[Any, Tensor, int]] = []
        self._size_to: dict[int, int] = {}
        self._size_from: dict[int, int] = {}
        """The agreed frame size of each wire, by peer (absent: a bare header's)."""
        self._named: dict[int, dict[str, Tensor]] = {}
        """Per source: the entries of the named message whose count ``recv`` returned."""

    def send(self, tensor: Tensor, dst: int) -> None:
        self._send_frame(TENSOR, [("", tensor)], dst)

    def send_named(self, messages: dict[str, Tensor], dst: int) -> None:
        self._send_frame(NAMED, sorted(messages.items()), dst)

    def send_stop(self, dst: int) -> None:
        self._send_frame(STOP, [], dst)

    def flush(self) -> None:
        for work, _, dst in self._in_flight:
            self._guard(work.wait, "send to", dst)
        self._in_flight.clear()

    def recv(self, src: int, track: bool = True) -> Tensor | None:
        started = time.perf_counter()
        frame = self._recv_frame(src)
        if track:
            self.note_wait(started, time.perf_counter())
        kind, entries = _parse(frame)
        if kind == STOP:
            return None
        if kind == NAMED:
            # the count, as a sender of a count first would have sent it; the entries wait
            # for ``recv_named_body``
            self._named[src] = entries
            # cpu: a count the caller reads as a number
            return torch.tensor([len(entries)], dtype=torch.int64)
        return entries[""]

    def recv_named_body(self, src: int, count: int, track: bool = True) -> dict[str, Tensor]:
        entries = self._named.pop(src, None)
        if entries is None or len(entries) != count:
            raise StageError(f"stage {self.rank} expected a named message from stage {src}")
        return entries

    def _send_frame(self, kind: int, entries: list[tuple[str, Tensor]], dst: int) -> None:
        frame = _frame(kind, entries, self.device)
        agreed = self._size_to.get(dst, _bytes(HEAD))
        if frame.numel() != agreed:
            resize = torch.zeros(agreed, dtype=torch.uint8, device=self.device)
            # cpu: the two words, copied into the frame on its device
            resize[: _bytes(2)].view(torch.int64).copy_(torch.tensor([RESIZE, frame.numel()]))
            self._isend(resize, dst)
            self._size_to[dst] = frame.numel()
        self._isend(frame, dst)

    def _recv_frame(self, src: int) -> Tensor:
        while True:
            size = self._size_from.get(src, _bytes(HEAD))
            frame = torch.empty(size, dtype=torch.uint8, device=self.device)
            self._guard(partial(dist.recv, frame, src), "receive from", src)
            kind, new_size = frame[: _bytes(2)].view(torch.int64).tolist()
            if kind != RESIZE:
                return frame
            self._size_from[src] = new_size

    def _isend(self, tensor: Tensor, dst: int) -> None:
        work = self._guard(lambda: dist.isend(tensor, dst), "send to", dst)
        self.transfers += 1
        self._in_flight.append((work, tensor, dst))  # keep the buffer alive until sent
        if len(self._in_flight) > 64:  # bound memory: old sends have long completed
            old, _, old_dst = self._in_flight.pop(0)
            self._guard(old.wait, "send to", old_dst)

    def _guard(self, call: Callable[[], Any], what: str, peer: int) -> Any:
        try:
            return call()
        except RuntimeError as error:
            text = str(error).strip()
            reason = text.splitlines()[0] if text else type(error).__name__
            raise StageError(
                f"stage {self.rank} (rank {self.rank}) could not {what} stage {peer} "
                f"(rank {peer}): {reason}; "
                "that stage died or hung past engine.timeout_s (see its log)"
            ) from error


def _frame(kind: int, entries: list[tuple[str, Tensor]], device: torch.device) -> Tensor:
    """One byte frame: the head, the index, then every payload (see the module docstring)."""
    index: list[int] = []
    for name, tensor in entries:
        encoded = name.encode()
        index += [_dtype_code(tensor), tensor.dim(), *tensor.shape, len(encoded), *encoded]
    words = [kind, len(entries), len(index), *index]
    offsets, end = _layout(len(words), [t.numel() * t.element_size() for _, t in entries])
    frame = torch.empty(end, dtype=torch.uint8, device=device)
    # cpu: the head and index's own values, copied into the frame on its device
    frame[: _bytes(len(words))].view(torch.int64).copy_(torch.tensor(words, dtype=torch.int64))
    for (_, tensor), at in zip(entries, offsets, strict=True):
        wire = torch.uint8 if tensor.dtype == torch.bool else tensor.dtype
        size = tensor.numel() * tensor.element_size()
        frame[at : at + size].view(wire).copy_(tensor.detach().reshape(-1).view(wire))
    return frame


def _parse(frame: Tensor) -> tuple[int, dict[str, Tensor]]:
    """A frame's kind and its entries, by name (views into the frame; bools restored)."""
    kind, count, length = frame[: _bytes(HEAD)].view(torch.int64).tolist()
    values = frame[_bytes(HEAD) : _bytes(HEAD + length)].view(torch.int64).tolist()
    index: list[Entry] = []
    at = 0
    while len(index) < count:
        code, ndim = values[at], values[at + 1]
        shape = values[at + 2 : at + 2 + ndim]
        size = values[at + 2 + ndim]
        start = at + 3 + ndim
        index.append((bytes(values[start : start + size]).decode(), code, shape))
        at = start + size
    sizes = [DTYPES[code].itemsize * _numel(shape) for _, code, shape in index]
    offsets, _ = _layout(HEAD + length, sizes)
    entries = {}
    for (name, code, shape), at_byte, size in zip(index, offsets, sizes, strict=True):
        dtype = DTYPES[code]
        wire = torch.uint8 if dtype == torch.bool else dtype
        entries[name] = frame[at_byte : at_byte + size].view(wire).view(shape).to(dtype)
    return kind, entries


def _layout(words: int, sizes: list[int]) -> tuple[list[int], int]:
    """The byte offset of each payload after ``words`` int64 words, and the frame's size."""
    offsets, end = [], _bytes(words)
    for size in sizes:
        offsets.append(end)
        end += -(-size // ALIGN) * ALIGN
    return offsets, end


def _bytes(words: int) -> int:
    return 8 * words


def _numel(shape: list[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def guarded(what: str, call: Callable[[], T]) -> T:
    """``call()``, a collective of the process group (``what``: all_reduce, barrier, ...), with
    a failure turned into ``StageError`` naming this stage and the peers it waited for: a
    collective does not say which peer is gone, so name them all (with 2 stages, the other)."""
    try:
        return call()
    except RuntimeError as error:
        rank, world = dist.get_rank(), dist.get_world_size()
        peers = ", ".join(str(r) for r in range(world) if r != rank)
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        raise StageError(
            f"stage {rank} (rank {rank}) could not {what} with stage(s) {peers} "
            f"(rank(s) {peers}): {reason}; a stage died, stopped or hung past "
            "engine.timeout_s (see its log)"
        ) from error


def _dtype_code(tensor: Tensor) -> int:
    if tensor.dtype not in DTYPES:
        raise ValueError(f"cannot send dtype {tensor.dtype}; valid: {DTYPES}")
    return DTYPES.index(tensor.dtype)
