"""One training step over a contiguous range of blocks in one process.

Shared by the engines: the LocalEngine runs every block through it; a stage of the
StageEngine runs its own blocks. Nothing here knows which rule it serves: the rule's
``wiring`` says whether input gradients are needed, its ``block_objective`` says what each
block learns from, and messages flow top-down (``"grad"`` from the block above, ``outbox``
entries broadcast to every lower block).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from beyond_backprop.engines.device import block_autocast, current_loss_scale
from beyond_backprop.errors import NonFiniteLossError
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import Batch, BlockContext, LearningRule, LocalLoss, Objective


@dataclass
class StepResult:
    """What one step produced: the loss terms per block, and messages for blocks below."""

    terms: dict[tuple[int, str], float]
    """(block, term name) -> value."""
    grad_below: Tensor | None
    """dL/d(input of the lowest block), for the block below the range (None when not needed)."""
    outbox: dict[str, Tensor]
    """Broadcast messages for the blocks below the range."""


def frozen_forward(stack: BlockStack, x: Tensor, start: int, stop: int) -> Tensor:
    """Run blocks ``start`` .. ``stop - 1`` frozen: no gradients, and in eval mode so that
    their BatchNorm statistics do not move either (the training mode is restored after)."""
    if stop <= start:
        return x
    frozen = stack.blocks[start:stop]
    frozen.eval()
    with torch.no_grad():
        x = stack.forward_range(x, start, stop)
    frozen.train(stack.training)
    return x


def forward_blocks(
    blocks: Sequence[nn.Module], first: int, x: Tensor, needs_input_grad: bool
) -> list[tuple[Tensor, Tensor]]:
    """Run ``blocks`` (numbered from ``first``) on ``x``; returns (input, output) per block.

    Every block's input is detached from the block below, so each block's backward pass ends
    at its own input; when the wiring sends gradients down, the input requires grad so that
    backward leaves dL/d(input) there to send to the block below.
    """
    pairs = []
    for offset, block in enumerate(blocks):
        x_in = x.detach()
        if needs_input_grad and (offset > 0 or first > 0):
            x_in.requires_grad_(True)
        with block_autocast():
            x = block(x_in)
        pairs.append((x_in, x))
    return pairs


def backward_blocks(
    rule: LearningRule,
    locals_: Sequence[nn.Module | None],
    pairs: Sequence[tuple[Tensor, Tensor]],
    first: int,
    num_blocks: int,
    batch: Batch,
    step: int,
    epoch: int,
    inbox: Mapping[str, Tensor] | None = None,
    scale: float = 1.0,
    synthetic_first: bool = False,
    retain_graph: bool = False,
) -> StepResult:
    """Ask the rule for each block's objective, top block first, and back-propagate it inside
    the block; ``inbox`` holds the messages from above the range (``"grad"`` and broadcasts).

    ``scale`` weights the blocks' own loss terms (a micro-batch's share of the batch); it is
    not applied to gradients received from above, which already carry it. ``synthetic_first``:
    the lowest block's input is the rule's synthetic input (forward unlocking).
    ``retain_graph``: the blocks' graphs outlive the backward pass (a late signal goes
    through them later)."""
    inbox = dict(inbox or {})
    broadcast = {k: v for k, v in inbox.items() if k != "grad"}
    grad_from_above = inbox.get("grad")
    terms: dict[tuple[int, str], float] = {}
    for offset in reversed(range(len(pairs))):
        k = first + offset
        x_in, h_out = pairs[offset]
        messages = dict(broadcast)
        if grad_from_above is not None:
            messages["grad"] = grad_from_above
        ctx = BlockContext(k, num_blocks, x_in, h_out, batch, locals_[k], messages, step, epoch,
                           synthetic_input=synthetic_first and offset == 0)  # fmt: skip
        with block_autocast():
            objective = rule.block_objective(k, ctx)
        loss_scale = current_loss_scale(k)
        terms.update(_checked_values(objective.terms, k, step))
        overlap = rule.wiring.backward == "overlap" and isinstance(objective, LocalLoss)
        if overlap and grad_from_above is not None:
            _train_this_block_only(h_out, x_in, _scaled(grad_from_above, loss_scale))
        _apply(objective, h_out, scale, loss_scale, retain_graph)
        # outbox tensors are messages, not graph edges: lower blocks must not back-propagate
        # into the block that sent them
        broadcast.update({key: v.detach() for key, v in objective.outbox.items()})
        # what goes down is the true gradient: block k's loss scale is its own (fp16)
        below = x_in.grad if x_in.requires_grad else None
        grad_from_above = None if below is None else _scaled(below, 1 / loss_scale)
    return StepResult(terms, grad_from_above, broadcast)


@dataclass
class Late:
    """A block that updated before a signal it learns from arrived (a ``delayed_gradient``
    wiring's dL/dh_out, a ``synthetic`` forward's real input): what the rule's
    ``late_terms`` needs, and in ``inbox`` what has arrived. Plain tensors, so a checkpoint
    can hold it."""

    block: int
    step: int
    epoch: int
    x_in: Tensor
    h_out: Tensor
    x: Tensor
    y: Tensor
    inbox: dict[str, Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, block: int, pair: tuple[Tensor, Tensor], batch: Batch, step: int, epoch: int
           ) -> Late:  # fmt: skip
        x_in, h_out = pair
        return cls(block, step, epoch, x_in.detach(), h_out.detach(), batch.x, batch.y)

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def on(cls, device: torch.device, state: dict[str, Any]) -> Late:
        """A ``Late`` from its ``state_dict``, its tensors moved to ``device``."""
        moved: dict[str, Any] = {
            k: v.to(device) if isinstance(v, Tensor) else v for k, v in state.items()
        }
        moved["inbox"] = {k: v.to(device) for k, v in state.get("inbox", {}).items()}
        return cls(**moved)


def learn_late(
    rule: LearningRule, locals_: Sequence[nn.Module | None], late: Late, num_blocks: int
) -> dict[tuple[int, str], float]:
    """Back-propagate the rule's ``late_terms`` for ``late`` (its signals have arrived)."""
    k = late.block
    batch = Batch(late.x, late.y)
    ctx = BlockContext(k, num_blocks, late.x_in, late.h_out, batch, locals_[k], late.inbox,
                       late.step, late.epoch)  # fmt: skip
    with block_autocast():
        terms = rule.late_terms(k, ctx)
    values = _checked_values(terms, k, late.step)
    if terms:
        _scaled(torch.stack(list(terms.values())).sum(), current_loss_scale(k)).backward()
    return values


def train_blocks(
    rule: LearningRule,
    locals_: Sequence[nn.Module | None],
    blocks: Sequence[nn.Module],
    first: int,
    x: Tensor,
    num_blocks: int,
    batch: Batch,
    step: int,
    epoch: int,
) -> StepResult:
    """Forward and learn ``blocks`` (numbered from ``first``) on input ``x``.

    When no message crosses blocks (backward ``none``), each block runs forward, objective and
    backward before the next block's forward, so only one block's graph is alive at a time:
    the same updates as running every forward first (block k+1 reads block k's output, which
    its backward pass does not change, and every optimizer steps after all blocks), with a
    local rule's memory advantage. Otherwise every block runs forward, then the objectives go
    top-down so messages can flow.
    """
    if rule.wiring.backward != "none":
        pairs = forward_blocks(blocks, first, x, rule.wiring.needs_input_grad)
        return backward_blocks(rule, locals_, pairs, first, num_blocks, batch, step, epoch)
    terms: dict[tuple[int, str], float] = {}
    for offset, block in enumerate(blocks):
        pairs = forward_blocks([block], first + offset, x, needs_input_grad=False)
        result = backward_blocks(
            rule, locals_, pairs, first + offset, num_blocks, batch, step, epoch
        )
        terms.update(result.terms)
        x = pairs[0][1]
    return StepResult(terms, None, {})


def _scaled(tensor: Tensor, factor: float) -> Tensor:
    """``tensor * factor``; the tensor itself at factor 1, so fp32 paths stay bitwise."""
    return tensor if factor == 1.0 else tensor * factor


def _apply(
    objective: Objective, h_out: Tensor, scale: float, loss_scale: float = 1.0,
    retain_graph: bool = False,
) -> None:  # fmt: skip
    losses = list(objective.terms.values())
    scale *= loss_scale
    if scale != 1.0:  # skipped at 1 so the one-process path stays exactly as it was
        losses = [loss * scale for loss in losses]
    if isinstance(objective, LocalLoss):
        if losses:
            torch.stack(losses).sum().backward(retain_graph=retain_graph)
        return
    tensors = [h_out, *losses]
    grads = [_scaled(objective.grad, loss_scale), *(torch.ones_like(t) for t in losses)]
    torch.autograd.backward(tensors, grads, retain_graph=retain_graph)


def _train_this_block_only(h_out: Tensor, x_in: Tensor, grad: Tensor) -> None:
    """The ``overlap`` wiring: a block that answers with its own ``LocalLoss`` while the block
    above sent a gradient learns from both, but only its own loss reaches its input (and so
    the block below). ``grad`` (dL_above/dh_out) is accumulated into the block's parameters
    only (the leaves of its graph other than its input), so the overlapping gradient stops one
    block down and the input's gradient is not even computed."""
    leaves = _own_leaves(h_out, x_in)
    if leaves:  # retain_graph: the block's own loss is back-propagated through the graph next
        torch.autograd.backward(h_out, grad, retain_graph=True, inputs=leaves)


def _own_leaves(h_out: Tensor, x_in: Tensor) -> list[Tensor]:
    """The tensors requiring gradients that ``h_out`` was computed from, up to ``x_in``: the
    block's own parameters (found in its graph, so no module list is needed)."""
    stop = x_in.grad_fn  # x_in computed by the block below: nothing of it is the block's own
    leaves: dict[int, Tensor] = {}
    seen: set[object] = set()
    todo = [h_out.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node is stop or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # an AccumulateGrad node: a leaf
        if variable is not None:
            if variable is not x_in:
                leaves[id(variable)] = variable
            continue
        todo.extend(next_node for next_node, _ in node.next_functions)
    return list(leaves.values())


def _checked_values(
    terms: Mapping[str, Tensor], block: int, step: int
) -> dict[tuple[int, str], float]:
    """Each term's value; a non-finite one stops the run naming step, block and term."""
    values = {}
    for name, tensor in terms.items():
        value = float(tensor.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(step, block, name, value)
        values[(block, name)] = value
    return values
