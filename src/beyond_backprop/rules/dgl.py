"""Decoupled Greedy Learning: every block at once, each on its own auxiliary loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from beyond_backprop.models.heads import HeadConfig, build_heads
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.auxiliary import AuxiliaryHeadRule, head_loss
from beyond_backprop.rules.base import BlockContext, LocalLoss, Objective, Wiring
from beyond_backprop.rules.registry import register_rule


@register_rule("dgl", "decoupled greedy learning: all blocks at once on auxiliary losses")
class DGL(AuxiliaryHeadRule):
    """Decoupled Greedy Learning (Belilovsky, Eickenberg and Oyallon, arXiv 1901.08164).

    Every block learns at the same time from the cross-entropy of a small auxiliary classifier
    on its own output (Sec. 3, Algorithm 1); its input is detached, so no gradient crosses a
    block boundary and a block may update as soon as its own forward pass is done (update and
    backward unlocking). The last block outputs the logits and learns from them directly; the
    network's prediction is that last block's output. In a synchronous step block k+1's input
    is block k's output computed before block k's update in the same step.

    The asynchronous variant (Sec. 3.2, Algorithm 2: a replay buffer between consecutive
    modules) is the engine's business: ``engine.schedule: async`` on one process (see
    ``engines/replay.py``); this rule only declares ``stale_ok``.

    The paper's auxiliary networks (Sec. 4.1, Table 1) are ``head.kind`` ``mlp_sr`` (its
    default, MLP-SR-aux), ``dgl_mlp`` and ``cnn`` (``models/heads.py``, exactly the authors').

    Deviations: the default head is NOT MLP-SR-aux but our cheaper ``pool_mlp`` (average to
    2x2, then a 3-layer MLP 128 wide, no BatchNorm), sized for MNIST-scale models; the CIFAR-10
    preset uses ``mlp_sr``. Blocks are the architecture's blocks, or groups of them through
    the ``blocks`` option.
    """

    @dataclass(frozen=True)
    class Config:
        """Options of decoupled greedy learning."""

        head: HeadConfig = field(default_factory=lambda: HeadConfig("pool_mlp", depth=3, width=128))
        """The auxiliary classifier on every block but the last (``models/heads.py``)."""
        blocks: tuple[int, ...] = ()
        """Architecture block indices that start a new block (after the first), e.g. ``[2]``
        merges a 4-block stack into two blocks of two; empty: the architecture's blocks."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            starts = list(self.blocks)
            if starts != sorted(set(starts)) or any(k < 1 for k in starts):
                return [("blocks", f"{starts} is invalid: indices >= 1, strictly increasing")]
            return []

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="none", stale_ok=True)

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """An auxiliary head on every block but the last."""
        return build_heads(stack, self.config.head)

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """Cross-entropy of the block's own head (the logits for the last block)."""
        return LocalLoss({"loss": head_loss(ctx)})
