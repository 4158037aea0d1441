"""Split a stack into stages of equal measured cost (a short timed dry run of the rule's own
step, one block at a time)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from beyond_backprop.engines.device import synchronize, to_device
from beyond_backprop.engines.step import backward_blocks, forward_blocks, frozen_forward
from beyond_backprop.experiment import Experiment
from beyond_backprop.rules.base import Batch


def measure_block_costs(experiment: Experiment, repeats: int = 3) -> list[float]:
    """Seconds each block costs in one training step of the experiment's rule, on one batch:
    its forward, its objective (the rule's local module, heads and views included) and its
    backward, each block given what the block above sends it, as across a stage boundary.
    Median of ``repeats`` after one warm-up; a block the rule does not train costs its
    forward (below the trained blocks) or nothing (above them).

    The dry run leaves nothing behind: parameters, buffers (BatchNorm statistics) and
    gradients of the stack and the local modules are restored, and torch's random generators
    too (a rule's views draw from them)."""
    exp, device = experiment, experiment.device
    n = len(exp.stack)
    active = list(exp.rule.active_blocks(0, n))
    first, last = active[0], active[-1]
    size = exp.config.data.batch_size
    data = exp.data.train
    batch = Batch(to_device(data.x[:size], device), to_device(data.y[:size], device))
    modules = [exp.stack, *(m for m in exp.locals if m is not None)]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]
    grads = {p: p.grad for m in modules for p in m.parameters()}
    for p in grads:
        p.grad = None  # backward would accumulate into them in place
    times: list[list[float]] = [[] for _ in range(n)]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for attempt in range(repeats + 1):  # the first attempt pays one-off costs
            seconds = _timed_step(exp, exp.rule.transform_batch(batch, 0), first, last)
            for k, s in enumerate(seconds if attempt else []):
                times[k].append(s)
    for module, state in zip(modules, saved, strict=True):
        module.load_state_dict(state)
    for p, grad in grads.items():
        p.grad = grad
    return [sorted(t)[len(t) // 2] for t in times]


def _timed_step(exp: Experiment, batch: Batch, first: int, last: int) -> list[float]:
    """The work of ``train_blocks`` on blocks ``first`` .. ``last``, block by block and timed:
    every forward, then each block's objective and backward, top block first (the order of
    the wirings that send messages; a purely local rule's block-after-block order does the
    same work)."""
    n, device, rule = len(exp.stack), exp.device, exp.rule
    seconds = [0.0] * n
    x = batch.x
    for k in range(first):
        started = time.perf_counter()
        x = frozen_forward(exp.stack, x, k, k + 1)
        synchronize(device)
        seconds[k] = time.perf_counter() - started
    pairs = []
    for k in range(first, last + 1):
        started = time.perf_counter()
        (pair,) = forward_blocks([exp.stack.blocks[k]], k, x, rule.wiring.needs_input_grad)
        synchronize(device)
        seconds[k] = time.perf_counter() - started
        pairs.append(pair)
        x = pair[1]
    inbox: dict[str, torch.Tensor] = {}
    for k in reversed(range(first, last + 1)):
        started = time.perf_counter()
        result = backward_blocks(rule, exp.locals, [pairs[k - first]], k, n, batch, 0, 0, inbox)
        synchronize(device)
        seconds[k] += time.perf_counter() - started
        inbox = dict(result.outbox)
        if result.grad_below is not None:
            inbox["grad"] = result.grad_below
    return seconds


def balanced_boundaries(costs: Sequence[float], stages: int) -> list[int]:
    """The stage boundaries (first block of every stage after the first) that minimise the
    cost of the most expensive stage: the linear-partition problem, solved exactly."""
    n = len(costs)
    if not 1 <= stages <= n:
        raise ValueError(f"cannot split {n} blocks into {stages} stages (valid: 1..{n})")
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    inf = float("inf")
    # best[s][i]: the smallest maximum stage cost splitting blocks[:i] into s stages
    best = [[inf] * (n + 1) for _ in range(stages + 1)]
    cut = [[0] * (n + 1) for _ in range(stages + 1)]
    best[0][0] = 0.0
    for s in range(1, stages + 1):
        for i in range(s, n + 1):
            for j in range(s - 1, i):
                value = max(best[s - 1][j], prefix[i] - prefix[j])
                if value < best[s][i]:
                    best[s][i], cut[s][i] = value, j
    boundaries, i = [], n
    for s in range(stages, 1, -1):
        i = cut[s][i]
        boundaries.append(i)
    return sorted(boundaries)
