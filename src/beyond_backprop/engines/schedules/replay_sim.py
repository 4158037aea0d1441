"""``async`` on one process: DGL's asynchronous training with replay buffers, simulated in
one process with a seeded update order, so it is reproducible on one core.

Module 0 reads the data; every module k > 0 reads from a replay buffer that module k-1 fills
with its outputs (computed before its own update, detached) and the targets. A tick consumes
one training batch: the modules step in order (bottom-up or a seeded permutation), each at
most once; a module whose buffer is empty skips its turn, and the slow module (if any) takes
its turn with probability ``1 / slowdown``; with ``max_buffer_reuse`` a module whose buffer
is used up skips its turn too (it stalls). Each module above the first logs ``staleness``
(this tick's step minus the step its input was computed at) and ``reuse`` (how many times
that input has now been drawn). A module's step is the synchronous step of that one
block: forward on its input, its objective, backward inside it, its optimizer step. With
buffers of size 1, ``in_order`` updates and no slow module this is exactly synchronous DGL.
"""

from __future__ import annotations

from typing import Any

import torch

from beyond_backprop.engines.protocol import Terms
from beyond_backprop.engines.replay import ReplayBuffer
from beyond_backprop.engines.schedules.one_process import OneProcessStep
from beyond_backprop.engines.schedules.registry import register_schedule
from beyond_backprop.engines.step import backward_blocks, forward_blocks
from beyond_backprop.errors import WiringError
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.base import Batch, Wiring


@register_schedule("async", staged=False)
class ReplaySimulation(OneProcessStep):
    """The replay buffers and the seeded schedule of the simulated asynchronous modules.

    Args:
        experiment: the built experiment (its stack, rule and locals); ``engine.replay`` gives
            buffer size, sampling, update order and slow module; ``seed`` seeds the
            simulator's own generator (the order, the draws), the global RNG is left to the
            model and the data.
    """

    serves_what = "wirings with stale_ok"

    @classmethod
    def serves(cls, wiring: Wiring) -> bool:
        return wiring.stale_ok

    def __init__(self, experiment: Experiment) -> None:
        super().__init__(experiment)
        config = experiment.config.engine.replay
        n = len(experiment.stack)
        if config.slow_block is not None and config.slow_block >= n:
            raise WiringError(
                f"engine.replay.slow_block: {config.slow_block} is invalid: the stack has "
                f"{n} blocks (valid: 1..{n - 1})"
            )
        self.config = config
        self.generator = torch.Generator().manual_seed(experiment.config.seed)
        self.buffers = [
            ReplayBuffer(config.size, config.sampling, self.generator, config.max_buffer_reuse)
            for _ in range(n - 1)
        ]
        """``buffers[k - 1]`` holds module k's inputs."""
        self.updates = [0] * n
        """How many updates each module made (a slow module makes fewer)."""

    def step(self, batch: Batch, step: int, epoch: int, lr: float) -> Terms:
        """Consume one training batch: every module takes its turn once."""
        n = len(self.exp.stack)
        active = list(self.exp.rule.active_blocks(epoch, n))
        if active != list(range(n)):
            raise WiringError(
                f"the async schedule trains every block at once; the rule gave {active}"
            )
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
            elif not self.buffers[k - 1].available():
                continue  # nothing has reached this module yet, or all of it is used up
            else:
                buffer = self.buffers[k - 1]
                x, y, produced = buffer.sample()
                # entries restored from a checkpoint are on the CPU
                module_batch = Batch(x.to(self.exp.device), y.to(self.exp.device))
                terms[(k, "staleness")] = float(step - int(produced))
                terms[(k, "reuse")] = float(buffer.last_uses)
            terms.update(self._module_step(k, module_batch, epoch, step, lr))
        return terms

    def _module_step(
        self, k: int, batch: Batch, epoch: int, step: int, lr: float
    ) -> dict[tuple[int, str], float]:
        exp = self.exp
        self.optimizers.prepare([k], lr)
        block = exp.stack.blocks[k]
        pairs = forward_blocks([block], k, batch.x, exp.rule.wiring.needs_input_grad)
        result = backward_blocks(exp.rule, exp.locals, pairs, k, len(exp.stack), batch, step, epoch)
        self.optimizers.step([k])
        self.updates[k] += 1
        if k + 1 < len(exp.stack):
            # the output was computed before this module's update, as in a synchronous step
            # cpu: the producer's step, a label of the entry
            self.buffers[k].push((pairs[0][1], batch.y, torch.tensor(step)))
        return result.terms

    def state_dict(self) -> dict[str, Any]:
        """Parameters plus buffers, generator state and update counts (bitwise resume)."""
        replay = {
            "generator": self.generator.get_state(),
            "buffers": [b.state_dict() for b in self.buffers],
            "updates": list(self.updates),
        }
        return {**super().state_dict(), "replay": replay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved."""
        super().load_state_dict(state)
        state = state["replay"]
        self.generator.set_state(state["generator"])
        for buffer, saved in zip(self.buffers, state["buffers"], strict=True):
            buffer.load_state_dict(saved)
        self.updates = [int(u) for u in state["updates"]]
