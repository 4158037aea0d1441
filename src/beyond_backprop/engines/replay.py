"""A replay buffer between two modules, as in DGL's asynchronous variant (1901.08164, Sec.
3.2, Algorithm 2): the module below pushes (activation, target) pairs, the module above draws
from the buffer whenever it is ready to step, so neither waits for the other.

A plain seeded data structure: it knows nothing of engines, processes or devices, and all
its randomness comes from the ``torch.Generator`` it is given, so a run that replays the same
pushes and draws with the same generator state gets the same samples.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

import torch
from torch import Tensor

Sampling = Literal["uniform", "newest", "priority_lifo"]


class ReplayBuffer:
    """A bounded FIFO of tensor tuples, drawn from without removal, counting each entry's uses.

    Args:
        capacity: how many entries it keeps; pushing into a full buffer drops the oldest.
        sampling: ``uniform`` (random entry, from ``generator``), ``newest``, or
            ``priority_lifo`` (the authors' buffer code: the least-used entries first, the
            freshest among them).
        generator: the source of every random draw.
        max_reuse: an entry is drawn at most this many times (None: no limit); once every
            entry is used up, nothing is ``available`` and the module above stalls until the
            module below pushes a fresh one (the authors' ``max_buffer_reuse``).

    Examples:
        >>> buffer = ReplayBuffer(2, "newest", torch.Generator().manual_seed(0))
        >>> buffer.push((torch.tensor(1.0),)); buffer.push((torch.tensor(2.0),))
        >>> buffer.push((torch.tensor(3.0),)); len(buffer), float(buffer.sample()[0])
        (2, 3.0)
    """

    def __init__(
        self,
        capacity: int,
        sampling: Sampling,
        generator: torch.Generator,
        max_reuse: int | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"a replay buffer needs capacity >= 1, got {capacity}")
        self.capacity = capacity
        self.sampling = sampling
        self.generator = generator
        self.max_reuse = max_reuse
        self._entries: deque[tuple[Tensor, ...]] = deque(maxlen=capacity)
        self._uses: deque[int] = deque(maxlen=capacity)
        self.last_uses = 0
        """How many times the entry the last ``sample`` returned has been drawn, that draw
        included (1: its first use)."""

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, entry: tuple[Tensor, ...]) -> None:
        """Store ``entry`` (detached: a buffer holds values, never graph edges)."""
        self._entries.append(tuple(t.detach() for t in entry))
        self._uses.append(0)

    def _eligible(self) -> list[int]:
        limit = self.max_reuse
        return [i for i, used in enumerate(self._uses) if limit is None or used < limit]

    def available(self) -> bool:
        """Whether ``sample`` has an entry to give (stored and not used up)."""
        return bool(self._eligible())

    def sample(self) -> tuple[Tensor, ...]:
        """One stored entry that is not used up (``available`` must be true)."""
        eligible = self._eligible()
        if not eligible:
            raise IndexError("sample from an empty (or used-up) replay buffer")
        if self.sampling == "newest":
            index = eligible[-1]
        elif self.sampling == "priority_lifo":
            fewest = min(self._uses[i] for i in eligible)
            index = max(i for i in eligible if self._uses[i] == fewest)  # the freshest of them
        else:
            pick = int(torch.randint(len(eligible), (1,), generator=self.generator))
            index = eligible[pick]
        self._uses[index] += 1
        self.last_uses = self._uses[index]
        return self._entries[index]

    def state_dict(self) -> dict[str, Any]:
        """The stored entries and their use counts (tensors and ints only, safe for
        ``torch.load(weights_only=True)``)."""
        return {"entries": [list(entry) for entry in self._entries], "uses": list(self._uses)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the entries saved by ``state_dict``."""
        self._entries = deque((tuple(e) for e in state["entries"]), maxlen=self.capacity)
        uses = state.get("uses", [0] * len(self._entries))
        self._uses = deque((int(u) for u in uses), maxlen=self.capacity)
