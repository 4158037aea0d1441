"""The base of the schedules that apply a signal from another stage ``engine.staleness`` steps
late: ``stale_error`` (DFA's output error) and ``stale_overlap`` (the overlap's one-block
gradient).

The stage that sends the signal sends it in the step it belongs to, without waiting for
anyone. A stage that learns from it keeps, for every step it has run but not learned from
yet, the graph of the blocks that learn late (``in_flight``); at step t it receives the
signal of step t - s (sent s steps ago, so with s >= 1 it never waits for a signal of the
current step) and back-propagates it through the graph of step t - s, in step t's optimizer
step. That graph holds its own copies of the weights it read (``weights_kept``): the
optimizer updates the weights in place, and the late backward pass goes through the weights
of the forward pass, as pipeline-parallel back-propagation with stale weights does, so no
block is run twice. Checkpoints cannot hold a graph: they hold, per step in flight, the
blocks' input and their weights at that step, and a resumed run rebuilds the graphs from
them (the same operations on the same values: bitwise the graph it replaces, BatchNorm's
running statistics left as they were; random layers draw new masks). ``settle`` receives
every signal already sent (the senders sent them at their steps), so the state saved is
that of a step boundary. Every step, the top learning block of a stage below the top logs
the term ``staleness``: s, also in the first s steps, when nothing is due yet (so the
logged means are s exactly); the top stage, which learns from the current batch, logs 0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.stage import Pairs, Terms
from beyond_backprop.engines.step import Late, forward_blocks
from beyond_backprop.rules.base import Batch


class KeptWeights:
    """The copies of the parameters that a graph recorded in ``weights_kept`` saved."""

    def __init__(self) -> None:
        self.copies: dict[int, torch.Tensor] = {}
        """By the parameter's storage: a copy of the whole parameter."""

    def of(self, modules: Sequence[nn.Module]) -> list[torch.Tensor]:
        """The ``modules``' parameters at the forward pass: the graph's own copies, or a new
        copy of a parameter the graph did not save (a bias, whose gradient needs no value)."""
        params = [p for m in modules for p in m.parameters()]
        copies = [self.copies.get(p.untyped_storage().data_ptr()) for p in params]
        return [p.detach().clone() if c is None else c for p, c in zip(params, copies, strict=True)]


@contextmanager
def weights_kept(modules: Sequence[nn.Module]) -> Iterator[KeptWeights]:
    """The graph recorded inside saves copies of the ``modules``' parameters it reads (and of
    views of them), so it can be back-propagated after the optimizer updated them in place:
    a late backward pass goes through the weights of its forward pass. A parameter that owns
    its storage is copied once, however many views of it the graph saves; the copies are
    what a checkpoint saves of the step (``KeptWeights.of``)."""
    whole: dict[int, torch.Tensor] = {}
    parts: set[int] = set()  # storages that hold more than one parameter: copy each view
    for param in (p for m in modules for p in m.parameters()):
        storage = param.untyped_storage()
        if param.is_contiguous() and storage.nbytes() == param.numel() * param.element_size():
            whole[storage.data_ptr()] = param
        else:
            parts.add(storage.data_ptr())
    kept = KeptWeights()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage().data_ptr()
        if storage in whole:
            if storage not in kept.copies:
                kept.copies[storage] = whole[storage].detach().clone()
            copy = kept.copies[storage]
            return copy.as_strided(tensor.size(), tensor.stride(), tensor.storage_offset())
        if storage in parts:
            return tensor.detach().clone()
        return tensor.detach()  # not the tensor itself: a saved output would hold its own node

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield kept


@contextmanager
def kept_statistics(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Rebuilding a graph from a checkpoint is not a new batch: BatchNorm's running
    statistics are restored on exit."""
    buffers = [b for m in modules for b in m.buffers()]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved, strict=True):
                buffer.copy_(value)


@contextmanager
def weights_of(modules: Sequence[nn.Module], values: Sequence[torch.Tensor]) -> Iterator[None]:
    """The ``modules``' parameters hold ``values`` inside (their own values again on exit)."""
    params = [p for m in modules for p in m.parameters()]
    own = [p.detach().clone() for p in params]
    with torch.no_grad():
        for param, value in zip(params, values, strict=True):
            param.copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for param, value in zip(params, own, strict=True):
                param.copy_(value)


class StaleSignals(Schedule):
    """Steps in flight whose signal from ``source`` is applied ``engine.staleness`` steps late."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight: deque[Late] = deque()
        """The steps this stage has run but not learned from yet, oldest first."""
        self.graphs: deque[Pairs] = deque()
        """Their blocks' (input, output) pairs, whose graphs the late signal goes through."""
        self.weights: deque[list[torch.Tensor]] = deque()
        """Their blocks' parameters at the forward pass (what a checkpoint rebuilds from)."""
        self.arrived = 0
        """How many of the oldest steps in flight have their signal in ``inbox`` (a signal
        may be empty, so this count, not the inbox, says so)."""

    @property
    def source(self) -> int:
        """The rank that sends this stage its late signal."""
        raise NotImplementedError

    def default_staleness(self) -> int:
        """``engine.staleness`` when it is null."""
        raise NotImplementedError

    @property
    def staleness(self) -> int:
        """How many steps late the signal is applied (``engine.staleness``)."""
        configured = self.config.engine.staleness
        return self.default_staleness() if configured is None else configured

    def late_modules(self, late: Late) -> list[nn.Module]:
        """The blocks that learn late: from block ``late.block`` to the stage's top."""
        return list(self.stage.stack.blocks[late.block : self.stage.blocks.stop])

    def forward_and_keep(self, batch: Batch, step: int, epoch: int) -> tuple[Late, Pairs] | None:
        """Run the stage forward on ``batch`` (sending its output up), keep the graph of its
        learning blocks if it has any, and return the oldest step that is due, if one is."""
        stage = self.stage
        first = max(stage.blocks.start, stage.active.start)
        with weights_kept(list(stage.stack.blocks[first : stage.blocks.stop])) as kept:
            pairs = stage.forward(batch.x, batch)
        if not stage.learns:
            return None
        self.keep(pairs, first, batch, step, epoch, kept)
        return self.due()

    def keep(
        self, pairs: Pairs, first: int, batch: Batch, step: int, epoch: int, kept: KeptWeights
    ) -> None:
        """Keep step ``step``'s graph of the blocks that learn late (from block ``first``),
        recorded in ``weights_kept``, which gave ``kept``."""
        x_in = pairs[0][0].detach()
        late = Late(first, step, epoch, x_in, x_in.new_empty(0), batch.x, batch.y)
        self.in_flight.append(late)
        self.graphs.append(pairs)
        modules = self.late_modules(late)
        self.weights.append(kept.of(modules))

    def due(self) -> tuple[Late, Pairs] | None:
        """The oldest step in flight with its signal and its graph, once it is ``staleness``
        steps old (None in the first steps of training, before any signal is due)."""
        if len(self.in_flight) <= self.staleness:
            return None
        self._receive(1)
        self.arrived -= 1
        self.weights.popleft()
        return self.in_flight.popleft(), self.graphs.popleft()

    def logged(self, terms: Terms, staleness: int) -> Terms:
        """``terms`` with the staleness of the signal that the stage's top learning block
        learned from (the term ``staleness``)."""
        stage = self.stage
        terms[(min(stage.blocks.stop, stage.active.stop) - 1, "staleness")] = float(staleness)
        return terms

    def _receive(self, upto: int) -> None:
        """Receive the signals of the ``upto`` oldest steps in flight (in order: the source
        sent one per step)."""
        while self.arrived < min(upto, len(self.in_flight)):
            self.in_flight[self.arrived].inbox.update(self.stage.channel.recv_named(self.source))
            self.arrived += 1

    @property
    def unsent(self) -> int:
        """At a step boundary, how many of the newest steps in flight the source has not sent
        the signal of yet (default 0: it sends each in the step it belongs to)."""
        return 0

    def settle(self) -> None:
        # what the source has sent for the steps in flight is saved with its step
        self._receive(len(self.in_flight) - self.unsent)
        super().settle()

    def close(self) -> None:
        # training is over: these are never learned from
        self._receive(len(self.in_flight) - self.unsent)
        self.in_flight.clear()
        self.graphs.clear()
        self.weights.clear()
        self.arrived = 0
        super().close()

    def state_dict(self) -> dict[str, Any]:
        in_flight = [late.state_dict() for late in self.in_flight]
        return {"in_flight": in_flight, "weights": list(self.weights), "arrived": self.arrived}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(self.stage.stack.parameters()).device  # checkpoints load on the CPU
        self.in_flight = deque(Late.on(device, late) for late in state.get("in_flight", []))
        self.weights = deque([w.to(device) for w in ws] for ws in state.get("weights", []))
        self.graphs = deque(self._rebuilt(late, ws) for late, ws in zip(
            self.in_flight, self.weights, strict=True))  # fmt: skip
        self.arrived = int(state.get("arrived", 0))

    def _rebuilt(self, late: Late, weights: list[torch.Tensor]) -> Pairs:
        """The graph of step ``late.step``: its blocks re-run on its input with its weights."""
        modules = self.late_modules(late)
        needs_input_grad = self.stage.rule.wiring.needs_input_grad
        with weights_of(modules, weights), kept_statistics(modules), weights_kept(modules):
            return forward_blocks(modules, late.block, late.x_in, needs_input_grad)
