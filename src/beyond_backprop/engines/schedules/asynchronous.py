"""The StageEngine's ``async`` schedule: stages run at their own pace, each stage above the
first learning from a replay buffer of the activations the stage below sent (DGL's
asynchronous variant, arXiv 1901.08164 Sec. 3.2, across processes).

A background thread receives (activation, target, producer step) messages into the buffer;
the stage's training loop never waits as long as the buffer holds something it may use
(``uniform``, ``newest`` or ``priority_lifo`` sampling, from a generator seeded per rank; with
``max_buffer_reuse`` it waits once every entry is used up). ``engine.replay.order: in_order``
turns replay off: every activation is used once, in arrival order, which is the synchronous
schedule run asynchronously (tested equal to it). Staleness, the consumer's step minus the
step at which the producer computed the activation (negative when the producer runs ahead),
is logged per stage as the term ``staleness``, and how many times the entry has been drawn
(that draw included) as ``reuse``. The stop check that every stage joins each
``engine.stop_check_every`` steps also bounds how far stages drift apart.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import torch
from torch import Tensor

from beyond_backprop.config.engine import ReplayConfig
from beyond_backprop.config.schema import ExperimentConfig
from beyond_backprop.engines.device import side_stream
from beyond_backprop.engines.replay import ReplayBuffer
from beyond_backprop.engines.schedules.base import Schedule
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.stage import Stage, Terms
from beyond_backprop.engines.step import forward_blocks
from beyond_backprop.errors import BeyondBackpropError, WiringError
from beyond_backprop.rules.base import Batch, Wiring


class ActivationInbox:
    """What the stage below sent, received in the background."""

    def __init__(self, stage: Stage, config: ReplayConfig, seed: int) -> None:
        self.stage = stage
        generator = torch.Generator().manual_seed(seed * 7919 + stage.rank)
        self.buffer = ReplayBuffer(config.size, config.sampling, generator, config.max_buffer_reuse)
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
            # the channel's device: where what it receives lands (a fake one: the CPU)
            device = getattr(channel, "device", torch.device("cpu"))
            with side_stream(device):  # on a GPU the receives overlap the training thread's work
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

    def take(self) -> tuple[Tensor, Tensor, int, int]:
        """The next entry to learn from and its use count (waits only while there is none)."""
        started = time.perf_counter()
        with self.ready:
            self.ready.wait_for(lambda: self._available() or self.closed)
            self.stage.channel.note_wait(started, time.perf_counter())
            if self.error is not None:
                raise self.error
            if not self._available():
                raise BeyondBackpropError(f"stage {self.stage.rank}: the stage below stopped early")
            h, y, step = self.fresh.popleft() if self.in_order else self.buffer.sample()
            uses = 1 if self.in_order else self.buffer.last_uses
        return h, y, int(step[0]), uses

    def _available(self) -> bool:
        return bool(self.fresh) if self.in_order else self.buffer.available()


@register_schedule("async", staged=True)
class Asynchronous(Schedule):
    """Every stage at its own pace; each stage above the first learns from its inbox."""

    serves_what = "wirings with stale_ok"

    def __init__(self, stage: Stage, config: ExperimentConfig) -> None:
        super().__init__(stage, config)
        self.inbox = (
            None if stage.first else ActivationInbox(stage, config.engine.replay, config.seed)
        )

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.stale_ok

    def run(self, batch: Batch, step: int, epoch: int) -> Terms:
        stage = self.stage
        if len(stage.active) != len(stage.stack):
            raise WiringError("the async schedule needs every block active")
        produced, uses = step, 0
        if self.inbox is not None:
            h, y, produced, uses = self.inbox.take()
            batch = Batch(h, y)
        modules = list(stage.stack.blocks[stage.blocks.start : stage.blocks.stop])
        pairs = forward_blocks(modules, stage.blocks.start, batch.x, needs_input_grad=False)
        if not stage.last:
            # cpu: the channel moves what it sends to its device
            message = {"h": pairs[-1][1], "y": batch.y, "step": torch.tensor([step])}
            stage.channel.send_named(message, stage.rank + 1)
        terms, _ = stage.backward(pairs, batch, step, epoch, {})
        if not stage.first:
            terms[(stage.blocks.start, "staleness")] = float(step - produced)
            terms[(stage.blocks.start, "reuse")] = float(uses)
        return terms

    def close(self) -> None:
        """Tell the stage above that no more activations come; wait for this stage's
        receiver to finish."""
        if not self.stage.last:
            self.stage.channel.send_stop(self.stage.rank + 1)
        super().close()
        if self.inbox is not None:
            self.inbox.thread.join()

    def state_dict(self) -> dict[str, Any]:
        return {}
