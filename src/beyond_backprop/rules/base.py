"""The rule contract: what signal each block learns from, and nothing about where it runs.

A rule answers one question per block, ``block_objective(k, ctx)``; an engine (one process or
one process per stage) runs the blocks, delivers the messages the rule's ``wiring`` names, and
applies the updates. The contract is meant to express every rule of DESIGN.md:

- ``backprop``, ``fa``: the top block returns ``LocalLoss`` (the task loss); every other block
  returns ``OutputGradient(ctx.inbox["grad"])``, the gradient the block above sent down.
- ``greedy``, ``dgl``, ``local_parallel``, ``gim``, ``simclr`` per block: ``LocalLoss`` of an
  auxiliary module on the block's output (``ctx.local``); the input is detached.
- ``dni``: ``OutputGradient(M(h))`` at once; ``M`` learns from ``ctx.inbox["grad"]``, as a
  ``terms`` entry when the gradient is already there (one process), else in ``late_terms``
  when it arrives (the StageEngine's ``decoupled`` schedule).
- ``dfa``: the top block puts the output error into ``outbox``; every lower block returns
  ``OutputGradient`` built from ``ctx.inbox["output_error"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from beyond_backprop.models.stack import BlockStack

ForwardSignal = Literal["activation", "synthetic"]
BackwardSignal = Literal["none", "gradient", "delayed_gradient", "output_error", "overlap"]


@dataclass(frozen=True)
class Wiring:
    """What must travel between blocks for a rule, so an engine can check it can serve it.

    Attributes:
        forward: ``activation`` (block k+1 needs block k's output) or ``synthetic`` (block k+1
            may start from a learned estimate of its input).
        backward: ``none`` (purely local), ``gradient`` (the true gradient, blocking),
            ``delayed_gradient`` (a gradient that may arrive later, non-blocking),
            ``output_error`` (one error broadcast from the top to every block) or ``overlap``
            (a gradient that goes down one block only).
        stale_ok: the rule tolerates updates computed on stale parameters (asynchrony).
        estimates_gradient: under ``delayed_gradient``, a block can update before its gradient
            arrives from the rule's own estimate of it (DNI's synthetic gradient) and learns from
            the real one late; without, the block waits for the delayed gradient (DDG).
    """

    forward: ForwardSignal = "activation"
    backward: BackwardSignal = "gradient"
    stale_ok: bool = False
    estimates_gradient: bool = False

    @property
    def needs_input_grad(self) -> bool:
        """Whether a block's input gradient must be computed and sent to the block below."""
        return self.backward in ("gradient", "delayed_gradient", "overlap")


@dataclass(frozen=True)
class Batch:
    """One training batch: inputs, integer targets, and optional extra views."""

    x: Tensor
    y: Tensor
    views: tuple[Tensor, ...] = ()


@dataclass
class BlockContext:
    """Everything a rule may look at to give block ``index`` its objective.

    Attributes:
        index: the block's position in the stack.
        num_blocks: how many blocks the stack has.
        x_in: the block's input (detached from the block below; requires grad when the wiring
            sends gradients down).
        h_out: the block's output, still attached to the block's graph.
        batch: the batch being trained on.
        local: the rule's own module for this block (``build_locals``), or None.
        inbox: messages from other blocks: ``"grad"`` (dL/dh_out sent down by the block above),
            and whatever upper blocks put in their ``outbox`` (e.g. ``"output_error"``).
        step: the global step; epoch: the epoch.
        synthetic_input: ``x_in`` is the rule's own estimate of the input
            (``synthetic_input``), not the block below's output (forward unlocking).
    """

    index: int
    num_blocks: int
    x_in: Tensor
    h_out: Tensor
    batch: Batch
    local: nn.Module | None
    inbox: Mapping[str, Tensor]
    step: int
    epoch: int
    synthetic_input: bool = False

    @property
    def is_last(self) -> bool:
        """Whether this is the top block (the one whose output is the logits)."""
        return self.index == self.num_blocks - 1


@dataclass
class LocalLoss:
    """A scalar loss back-propagated inside the block and its local module only.

    Attributes:
        terms: named scalar terms, summed into the loss and logged per block.
        outbox: messages broadcast to every lower block's inbox (e.g. DFA's output error).
    """

    terms: dict[str, Tensor]
    outbox: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class OutputGradient:
    """A gradient for the block's output, injected with ``h_out.backward(grad)``.

    Attributes:
        grad: dL/dh_out as the rule estimates it (same shape as ``h_out``).
        terms: extra scalar losses back-propagated as well (e.g. a synthesizer's regression),
            logged per block.
        outbox: messages broadcast to every lower block's inbox.
    """

    grad: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    outbox: dict[str, Tensor] = field(default_factory=dict)


Objective = LocalLoss | OutputGradient


class LearningRule:
    """Base class of the rules: one subclass per paper in ``rules/<name>.py``.

    Subclasses set ``Config`` (a frozen dataclass of their options), ``default_wiring``, and
    implement ``block_objective``; the other methods have defaults that suit most rules.
    """

    Config: ClassVar[type[Any]]
    default_wiring: ClassVar[Wiring]
    """The wiring of the rule with its default options (``Config()``)."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @property
    def wiring(self) -> Wiring:
        """What must travel between blocks for this configured rule, checked by the engines.
        Default: ``default_wiring``; a rule whose options change it (a purely local mode)
        overrides this."""
        return self.default_wiring

    def prepare(self, stack: BlockStack) -> list[str]:
        """Transform the stack's layers in place before training (e.g. FA's layer swap);
        returns one line per change. Default: no change."""
        return []

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """The rule's own modules, one per block (None where a block has none)."""
        return [None] * len(stack)

    def total_epochs(self, epochs: int, num_blocks: int) -> int:
        """How many epochs training lasts, given ``train.epochs``. Default: as configured."""
        return epochs

    def lr_phase_epochs(self, epochs: int, num_blocks: int) -> int | None:
        """Epochs after which the learning-rate schedule starts over (a rule that trains its
        blocks one after another may give each block a whole schedule); None: one schedule
        over the whole run. Default: None."""
        return None

    def transform_batch(self, batch: Batch, step: int) -> Batch:
        """The batch the blocks train on (e.g. two augmented views stacked along the batch
        dimension for contrastive rules); drawn from torch's global RNG, which checkpoints
        save. Default: unchanged."""
        return batch

    def transform_targets(self, batch: Batch, step: int) -> Batch:
        """The batch of ``transform_batch`` as a stage that does not hold block 0 reads it:
        its targets and views, which must be the same on every stage, but not the inputs of
        block 0 (left as they come when only block 0 reads them, e.g. a contrastive rule's
        augmented views). Default: ``transform_batch``."""
        return self.transform_batch(batch, step)

    def active_blocks(self, epoch: int, num_blocks: int) -> Sequence[int]:
        """The blocks that learn in ``epoch``; blocks below the lowest active one run frozen,
        blocks above the highest do not run. Default: all."""
        return range(num_blocks)

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """What block ``k`` learns from in this step: the one place where rules differ."""
        raise NotImplementedError

    def late_terms(self, k: int, ctx: BlockContext) -> dict[str, Tensor]:
        """The terms that learn from what arrives after block ``k`` has already updated: an
        engine that does not wait gives ``block_objective`` an inbox without ``"grad"``
        (``delayed_gradient`` wirings), or a synthetic ``x_in`` (``synthetic`` forward), then
        calls this with ``inbox["grad"]`` (dL/dh_out) or ``inbox["input"]`` (the real input)
        once it came. ``ctx`` is the step's saved context, ``x_in`` and ``h_out`` detached.
        The terms are back-propagated into the rule's modules only. Default: none."""
        return {}

    def synthetic_input(self, k: int, local: nn.Module | None, batch: Batch) -> Tensor | None:
        """``synthetic`` forward wirings: an estimate of block ``k``'s input from the batch
        alone, so the block can learn before its real input arrives. Default: none."""
        return None

    def diagnostics(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], batch: Batch, step: int
    ) -> dict[tuple[int | None, str], float]:
        """Optional figures, (block, name) -> value, computed every ``train.diagnostics_every``
        steps on the step's batch before the update (e.g. the angle between a rule's update and
        the true gradient). Must not leave gradients behind (use ``torch.autograd.grad``).
        Default: none."""
        return {}

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """Logits to score in evaluation: key None is the network's prediction, integer keys
        are per-block predictions (e.g. auxiliary heads). Default: the stack's output."""
        return {None: stack(x)}
