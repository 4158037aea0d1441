"""The processes of a run as one object: a single process, or the ranks of a staged run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch.distributed as dist

from beyond_backprop.engines.messages import guarded

T = TypeVar("T")


class Group:
    """One process: rank 0 of 1; sharing and gathering are trivial."""

    rank = 0
    world_size = 1
    distributed = False

    def share(self, make: Callable[[], T]) -> T:
        """``make()`` on rank 0, its result on every rank."""
        return make()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        return [value]

    def barrier(self) -> None:
        """Wait until every rank is here."""


class DistGroup(Group):
    """The ranks of the initialised ``torch.distributed`` process group."""

    distributed = True

    def __init__(self) -> None:
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def share(self, make: Callable[[], T]) -> T:
        box: list[Any] = [make() if self.rank == 0 else None]
        guarded("share rank 0's value (broadcast)", lambda: dist.broadcast_object_list(box, src=0))
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        values: list[Any] = [None] * self.world_size
        guarded("gather every rank's value", lambda: dist.all_gather_object(values, value))
        return values

    def barrier(self) -> None:
        guarded("wait for every rank (barrier)", dist.barrier)


def current_group() -> Group:
    """The process group this process belongs to (one process when none is initialised)."""
    return DistGroup() if dist.is_available() and dist.is_initialized() else Group()
