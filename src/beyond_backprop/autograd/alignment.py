"""Alignment diagnostics: how far a rule's update is from the true back-propagation gradient.

Rules call these from ``LearningRule.diagnostics``; everything here works on a forward pass of
its own, leaves no ``.grad`` behind (``torch.autograd.grad`` only) and leaves no trace on the
training run: BatchNorm running statistics and the RNG (dropout masks) are restored afterwards,
so a run with diagnostics trains exactly as one without.

Angles are in degrees between the flattened tensors: 0 is the same direction, 90 orthogonal.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from beyond_backprop.models.stack import BlockStack


def angle_degrees(a: Sequence[Tensor] | Tensor, b: Sequence[Tensor] | Tensor) -> float:
    """The angle between ``a`` and ``b`` (tensors or lists of tensors, each flattened and
    concatenated); NaN when either is zero (no direction)."""
    va = _flat(a)
    vb = _flat(b)
    if va.shape != vb.shape:
        raise ValueError(f"cannot compare {tuple(va.shape)} with {tuple(vb.shape)} elements")
    va, vb = va.double(), vb.double()  # float64: small angles stay accurate
    norms = va.norm() * vb.norm()
    if norms == 0:
        return math.nan
    cosine = float((va @ vb) / norms)
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def _flat(x: Sequence[Tensor] | Tensor) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach().reshape(-1)
    return torch.cat([t.detach().reshape(-1) for t in x])


@contextmanager
def untouched(module: nn.Module) -> Iterator[None]:
    """Run a side forward pass: on exit, restore the module's buffers (BatchNorm statistics)
    and torch's RNG state (so dropout masks drawn inside are drawn again, identically, by the
    next forward pass)."""
    buffers = [(b, b.detach().clone()) for b in module.buffers()]
    rng = torch.get_rng_state()
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        torch.set_rng_state(rng)


def forward_keeping_outputs(stack: BlockStack, x: Tensor) -> list[Tensor]:
    """Every block's output, attached to one graph through the whole stack (no detach)."""
    outputs = []
    for block in stack.blocks:
        x = block(x)
        outputs.append(x)
    return outputs


def block_params(stack: BlockStack) -> list[list[nn.Parameter]]:
    """Each block's trainable parameters."""
    return [[p for p in block.parameters() if p.requires_grad] for block in stack.blocks]


def grads_or_zeros(
    outputs: Tensor | Sequence[Tensor],
    inputs: Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Tensor] | None = None,
) -> list[Tensor]:
    """``torch.autograd.grad`` keeping the graph, with zeros where an input is unused."""
    grads = torch.autograd.grad(
        outputs, list(inputs), grad_outputs, retain_graph=True, allow_unused=True
    )
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads, strict=True)]


def split_per_block(
    flat: Sequence[Tensor], params: Sequence[Sequence[nn.Parameter]]
) -> list[list[Tensor]]:
    """Cut a flat list of per-parameter tensors back into one list per block."""
    out: list[list[Tensor]] = []
    start = 0
    for block in params:
        out.append(list(flat[start : start + len(block)]))
        start += len(block)
    return out


def grad_angles(
    ours: Sequence[Sequence[Tensor]], true: Sequence[Sequence[Tensor]], blocks: Sequence[int]
) -> dict[tuple[int | None, str], float]:
    """``(k, "grad_angle")``: the angle between block k's update and its true gradient."""
    return {(k, "grad_angle"): angle_degrees(ours[k], true[k]) for k in blocks if true[k]}


def stack_gradients(
    stack: BlockStack, x: Tensor, y: Tensor
) -> tuple[list[list[Tensor]], list[Tensor]]:
    """The cross-entropy gradients the stack's own backward pass gives (whatever its layers
    do in backward): per block, the parameter gradients, and dL/dh for every block output
    but the last. Runs inside ``untouched``."""
    params = block_params(stack)
    flat = [p for block in params for p in block]
    with untouched(stack):
        outputs = forward_keeping_outputs(stack, x)
        loss = torch.nn.functional.cross_entropy(outputs[-1], y)
        grads = grads_or_zeros(loss, [*flat, *outputs[:-1]])
    return split_per_block(grads[: len(flat)], params), grads[len(flat) :]
