"""``engine.mode: async_sim``: DGL's asynchronous training with replay buffers, simulated in
one process with a seeded update order, so it is reproducible on one core.

Module 0 reads the data; every module k > 0 reads from a replay buffer that module k-1 fills
with its outputs (computed before its own update, detached) and the targets. A tick consumes
one training batch: the modules step in order (bottom-up or a seeded permutation), each at
most once; a module whose buffer is empty skips its turn, and the slow module (if any) takes
its turn with probability ``1 / slowdown``. A module's step is the synchronous step of that one
block: forward on its input, its objective, backward inside it, its optimizer step. With
buffers of size 1, ``in_order`` updates and no slow module this is exactly synchronous DGL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from beyond_backprop.engines.replay import ReplayBuffer, ReplayConfig
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules import default_wirings
from beyond_backprop.rules.base import Batch


def check_async_allowed(experiment: Experiment) -> None:
    """Refuse a rule that does not tolerate stale updates, naming the rules that do."""
    if experiment.rule.wiring.stale_ok:
        return
    allowed = [name for name, wiring in default_wirings().items() if wiring.stale_ok]
    raise WiringError(
        f"engine.mode: async_sim needs a rule whose wiring is stale_ok; rule "
        f"{experiment.config.rule.name!r} is not (rules that allow it: {', '.join(allowed)})"
    )


class AsyncSimulator:
    """The replay buffers and the seeded schedule of the simulated asynchronous modules.

    Args:
        experiment: the built experiment (its stack, rule and locals).
        optimizers: one optimizer per block (None for a block without parameters).
        config: buffer size, sampling, update order and slow module.
        seed: seeds the simulator's own generator (the order, the draws); the global RNG is
            left to the model and the data.
    """

    def __init__(
        self,
        experiment: Experiment,
        optimizers: Sequence[torch.optim.Optimizer | None],
        config: ReplayConfig,
        seed: int,
    ) -> None:
        check_async_allowed(experiment)
        n = len(experiment.stack)
        if config.slow_block is not None and config.slow_block >= n:
            raise WiringError(
                f"engine.replay.slow_block: {config.slow_block} is invalid: the stack has "
                f"{n} blocks (valid: 1..{n - 1})"
            )
        self.exp = experiment
        self.optimizers = optimizers
        self.config = config
        self.generator = torch.Generator().manual_seed(seed)
        self.buffers = [
            ReplayBuffer(config.size, config.sampling, self.generator) for _ in range(n - 1)
        ]
        """``buffers[k - 1]`` holds module k's inputs."""
        self.updates = [0] * n
        """How many updates each module made (a slow module makes fewer)."""

    def tick(self, batch: Batch, epoch: int, step: int, lr: float) -> dict[tuple[int, str], float]:
        """Consume one training batch: every module takes its turn once."""
        n = len(self.exp.stack)
        active = list(self.exp.rule.active_blocks(epoch, n))
        if active != list(range(n)):
            raise WiringError(f"async_sim trains every block at once; the rule gave {active}")
        if self.config.order == "in_order":
            order = list(range(n))
        else:
            order = torch.randperm(n, generator=self.generator).tolist()
        terms: dict[tuple[int, str], float] = {}
        for k in order:
            if k == self.config.slow_block:
                draw = float(torch.rand((), generator=self.generator))
                if draw >= 1.0 / self.config.slowdown:
                    continue
            if k == 0:
                module_batch = self.exp.rule.transform_batch(batch, step)
            elif len(self.buffers[k - 1]) == 0:
                continue  # nothing has reached this module yet
            else:
                x, y = self.buffers[k - 1].sample()
                module_batch = Batch(x, y)
            terms.update(self._module_step(k, module_batch, epoch, step, lr))
        return terms

    def _module_step(
        self, k: int, batch: Batch, epoch: int, step: int, lr: float
    ) -> dict[tuple[int, str], float]:
        exp = self.exp
        optimizer = self.optimizers[k]
        if optimizer is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
        block = exp.stack.blocks[k]
        pairs = forward_blocks([block], k, batch.x, exp.rule.wiring.needs_input_grad)
        result = backward_blocks(exp.rule, exp.locals, pairs, k, len(exp.stack), batch, step, epoch)
        if optimizer is not None:
            optimizer.step()
        self.updates[k] += 1
        if k + 1 < len(exp.stack):
            # the output was computed before this module's update, as in a synchronous step
            self.buffers[k].push((pairs[0][1], batch.y))
        return result.terms

    def state_dict(self) -> dict[str, Any]:
        """Buffers, generator state and update counts (for a bitwise-exact resume)."""
        return {
            "generator": self.generator.get_state(),
            "buffers": [b.state_dict() for b in self.buffers],
            "updates": list(self.updates),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved."""
        self.generator.set_state(state["generator"])
        for buffer, saved in zip(self.buffers, state["buffers"], strict=True):
            buffer.load_state_dict(saved)
        self.updates = [int(u) for u in state["updates"]]
