"""Split a stack into stages of equal measured cost (a short timed dry run per block)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor

from beyond_backprop.models import BlockStack


def measure_block_costs(stack: BlockStack, x: Tensor, repeats: int = 3) -> list[float]:
    """Seconds per forward+backward of each block on input batch ``x`` (median of
    ``repeats``, after one warm-up); leaves no gradients and no BatchNorm updates behind."""
    costs = []
    was_training = stack.training
    stack.eval()  # running statistics stay as they are
    h = x
    for k, block in enumerate(stack.blocks):
        times = []
        for attempt in range(repeats + 1):
            # training never computes the gradient of the data (the first block's input)
            x_in = h.detach().requires_grad_(k > 0)
            started = time.perf_counter()
            out = block(x_in)
            params = [p for p in block.parameters() if p.requires_grad]
            torch.autograd.grad(out.sum(), [x_in, *params] if k > 0 else params)
            if attempt:  # the first call pays one-off costs
                times.append(time.perf_counter() - started)
        costs.append(sorted(times)[len(times) // 2])
        with torch.no_grad():
            h = block(h)
    stack.train(was_training)
    return costs


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
