"""The StageEngine's ``async`` schedule: stages run at their own pace, each stage above the
first learning from a replay buffer of the activations the stage below sent (DGL's
asynchronous variant, arXiv 1901.08164 Sec. 3.2, across processes).

A background thread receives (activation, target, producer step) messages into the buffer;
the stage's training loop never waits as long as the buffer holds something (``uniform`` or
``newest`` sampling, from a generator seeded per rank). ``engine.replay.order: in_order``
turns replay off: every activation is used once, in arrival order, which is the synchronous
schedule run asynchronously (tested equal to it). Staleness, the consumer's step minus the
step at which the producer computed the activation (negative when the producer runs ahead),
is logged per stage as the term ``staleness``. The stop check that every stage joins each
``engine.stop_check_every`` steps also bounds how far stages drift apart.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import torch
from torch import Tensor

from beyond_backprop.engines.replay import ReplayBuffer, ReplayConfig
from beyond_backprop.engines.stage import Stage, Terms
from beyond_backprop.engines.step import forward_blocks
from beyond_backprop.errors import BeyondBackpropError
from beyond_backprop.rules.base import Batch


class ActivationInbox:
    """What the stage below sent, received in the background."""

    def __init__(self, stage: Stage, config: ReplayConfig, seed: int) -> None:
        self.stage = stage
        generator = torch.Generator().manual_seed(seed * 7919 + stage.rank)
        self.buffer = ReplayBuffer(config.size, config.sampling, generator)
        self.in_order = config.order == "in_order"
        self.fresh: deque[tuple[Tensor, ...]] = deque()
        self.ready = threading.Condition()
        self.closed = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._receive, name="bbp-inbox", daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        channel, source = self.stage.channel, self.stage.rank - 1
        try:
            while (count := channel.recv(source, track=False)) is not None:
                message = channel.recv_named_body(source, int(count[0]), track=False)
                entry = (message["h"], message["y"], message["step"])
                with self.ready:
                    self.fresh.append(entry) if self.in_order else self.buffer.push(entry)
                    self.ready.notify_all()
        except BaseException as error:  # handed to the training thread, which raises it
            self.error = error
        with self.ready:
            self.closed = True
            self.ready.notify_all()

    def take(self) -> tuple[Tensor, Tensor, int]:
        """The next entry to learn from (waits only while there is none)."""
        started = time.perf_counter()
        with self.ready:
            self.ready.wait_for(lambda: self._available() or self.closed)
            self.stage.channel.note_wait(started, time.perf_counter())
            if self.error is not None:
                raise self.error
            if not self._available():
                raise BeyondBackpropError(f"stage {self.stage.rank}: the stage below stopped early")
            h, y, step = self.fresh.popleft() if self.in_order else self.buffer.sample()
        return h, y, int(step[0])

    def _available(self) -> bool:
        return bool(self.fresh) if self.in_order else len(self.buffer) > 0


def asynchronous(stage: Stage, batch: Batch, step: int, epoch: int) -> Terms:
    """One update of this stage at its own pace (``stale_ok`` wirings)."""
    produced = step
    if not stage.first:
        if stage.inbox is None:
            raise BeyondBackpropError("async schedule: the stage has no activation inbox")
        h, y, produced = stage.inbox.take()
        batch = Batch(h, y)
    modules = list(stage.stack.blocks[stage.blocks.start : stage.blocks.stop])
    pairs = forward_blocks(modules, stage.blocks.start, batch.x, needs_input_grad=False)
    if not stage.last:
        message = {"h": pairs[-1][1], "y": batch.y, "step": torch.tensor([step])}
        stage.channel.send_named(message, stage.rank + 1)
    terms, _ = stage.backward(pairs, batch, step, epoch, {})
    if not stage.first:
        terms[(stage.blocks.start, "staleness")] = float(step - produced)
    return terms
