"""``DistChannel``: point-to-point tensors between stages over ``torch.distributed``, each
preceded by a small shape/dtype header.

A receiver cannot know the shape of what comes (the last batch of an epoch is smaller; a rule
may send an error of the output's shape), so every message is two transfers: a fixed-size
int64 header (kind, dtype code, number of dims, sizes) and then the payload. Named messages
(a rule's ``outbox``) travel packed: one header (kind NAMED, the count, the index's length),
one int64 index holding every entry's name, dtype and shape, then the payloads alone, so
n entries cost n + 2 transfers instead of the 4n + 2 of a count and (name, tensor) pairs
(each gloo transfer costs about half a millisecond of CPU here: with 16 stages on 2 cores
that decides whether the stages are CPU-bound).

Sends are non-blocking (``isend``): a stage hands its output to the next stage and goes on
with its own work, which is what lets stages overlap. ``flush`` waits for what is
still in flight; the buffers stay referenced until then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from beyond_backprop.engines.channel import Channel, StageError

T = TypeVar("T")
MAX_DIMS = 6
HEADER = 3 + MAX_DIMS
TENSOR, STOP, NAMED = 0, 1, 2
DTYPES = [
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8,
    torch.bool,  # travels as uint8 (not every backend sends bool), restored on arrival
]  # fmt: skip


class DistChannel(Channel):
    """A ``Channel`` over ``torch.distributed`` point-to-point calls, with failures turned into
    ``StageError`` naming the peer stage."""

    def __init__(self, rank: int, device: torch.device | None = None) -> None:
        super().__init__(rank)
        self.device = device or torch.device("cpu")
        self._in_flight: list[tuple[Any, Tensor, int]] = []
        self._named: dict[int, list[tuple[str, int, list[int]]]] = {}
        """Per source: the (name, dtype code, shape) entries of the named message whose
        header ``recv`` has read (``recv_named_body`` receives their payloads)."""

    def send(self, tensor: Tensor, dst: int) -> None:
        # everything travels from this rank's device (nccl sends only device tensors)
        payload = tensor.detach().to(self.device).contiguous()
        self._isend(_header(TENSOR, payload).to(self.device), dst)
        self._isend(payload.to(torch.uint8) if payload.dtype == torch.bool else payload, dst)

    def send_named(self, messages: dict[str, Tensor], dst: int) -> None:
        """Packed: header, index, then each payload (see the module docstring)."""
        payloads = [
            messages[name].detach().to(self.device).contiguous() for name in sorted(messages)
        ]
        index: list[int] = []
        for name, payload in zip(sorted(messages), payloads, strict=True):
            encoded = name.encode()
            index += [_dtype_code(payload), payload.dim(), *payload.shape, len(encoded), *encoded]
        # cpu: built here, moved to the channel's device
        header = torch.zeros(HEADER, dtype=torch.int64)
        header[0], header[1], header[2] = NAMED, len(payloads), len(index)
        self._isend(header.to(self.device), dst)
        if index:
            # cpu: the index's own values
            self._isend(torch.tensor(index, dtype=torch.int64).to(self.device), dst)
        for payload in payloads:
            self._isend(payload.to(torch.uint8) if payload.dtype == torch.bool else payload, dst)

    def send_stop(self, dst: int) -> None:
        self._isend(_header(STOP, None).to(self.device), dst)

    def flush(self) -> None:
        for work, _, dst in self._in_flight:
            self._guard(work.wait, "send to", dst)
        self._in_flight.clear()

    def _isend(self, tensor: Tensor, dst: int) -> None:
        work = self._guard(lambda: dist.isend(tensor, dst), "send to", dst)
        self._in_flight.append((work, tensor, dst))  # keep the buffer alive until sent
        if len(self._in_flight) > 64:  # bound memory: old sends have long completed
            old, _, old_dst = self._in_flight.pop(0)
            self._guard(old.wait, "send to", old_dst)

    def recv(self, src: int, track: bool = True) -> Tensor | None:
        header = torch.empty(HEADER, dtype=torch.int64, device=self.device)
        started = time.perf_counter()
        self._guard(lambda: dist.recv(header, src), "receive from", src)
        if track:
            self.note_wait(started, time.perf_counter())
        kind, code, ndim = header[:3].tolist()
        if kind == STOP:
            return None
        if kind == NAMED:
            # the count, as a sender of a count first would have sent it; the entries wait
            # for ``recv_named_body``
            self._named[src] = self._recv_index(src, length=ndim) if ndim else []
            # cpu: a count the caller reads as a number
            return torch.tensor([code], dtype=torch.int64)
        return self._recv_payload(src, code, header[3 : 3 + ndim].tolist())

    def recv_named_body(self, src: int, count: int, track: bool = True) -> dict[str, Tensor]:
        entries = self._named.pop(src, None)
        if entries is None or len(entries) != count:
            raise StageError(f"stage {self.rank} expected a named message from stage {src}")
        return {name: self._recv_payload(src, code, shape) for name, code, shape in entries}

    def _recv_index(self, src: int, length: int) -> list[tuple[str, int, list[int]]]:
        index = torch.empty(length, dtype=torch.int64, device=self.device)
        self._guard(lambda: dist.recv(index, src), "receive from", src)
        values, entries, at = index.tolist(), [], 0
        while at < len(values):
            code, ndim = values[at], values[at + 1]
            shape = values[at + 2 : at + 2 + ndim]
            size = values[at + 2 + ndim]
            start = at + 3 + ndim
            entries.append((bytes(values[start : start + size]).decode(), code, shape))
            at = start + size
        return entries

    def _recv_payload(self, src: int, code: int, shape: list[int]) -> Tensor:
        dtype = DTYPES[code]
        wire = torch.uint8 if dtype == torch.bool else dtype
        tensor = torch.empty(shape, dtype=wire, device=self.device)
        self._guard(lambda: dist.recv(tensor, src), "receive from", src)
        return tensor.to(dtype)

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


def _header(kind: int, tensor: Tensor | None) -> Tensor:
    # cpu: built here, moved to the channel's device when sent
    header = torch.zeros(HEADER, dtype=torch.int64)
    header[0] = kind
    if tensor is not None:
        if tensor.dim() > MAX_DIMS:
            raise ValueError(f"cannot send a {tensor.dim()}-d tensor (at most {MAX_DIMS} dims)")
        header[1] = _dtype_code(tensor)
        header[2] = tensor.dim()
        # cpu: the header's own values
        header[3 : 3 + tensor.dim()] = torch.tensor(tensor.shape, dtype=torch.int64)
    return header


def _dtype_code(tensor: Tensor) -> int:
    if tensor.dtype not in DTYPES:
        raise ValueError(f"cannot send dtype {tensor.dtype}; valid: {DTYPES}")
    if tensor.dim() > MAX_DIMS:
        raise ValueError(f"cannot send a {tensor.dim()}-d tensor (at most {MAX_DIMS} dims)")
    return DTYPES.index(tensor.dtype)
