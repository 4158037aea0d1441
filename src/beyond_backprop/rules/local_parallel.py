"""Local parallelism: a local loss per chunk of blocks, optionally overlapping the one below."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from torch import nn

from beyond_backprop.models.heads import HeadConfig, build_heads
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.auxiliary import AuxiliaryHeadRule, head_loss
from beyond_backprop.rules.base import BlockContext, LocalLoss, Objective, OutputGradient, Wiring
from beyond_backprop.rules.registry import register_rule


@register_rule("local_parallel", "local updates per chunk of blocks, with optional overlap")
class LocalParallel(AuxiliaryHeadRule):
    """Local parallelism (Laskin, Metz, Nabarro et al., arXiv 2012.03837, Sec. 3).

    The stack is cut into chunks of ``chunk`` consecutive blocks; each chunk learns from the
    cross-entropy of an auxiliary head on its top block, back-propagated inside the chunk only
    (truncated, chunked local updates). With ``overlap: 1`` a chunk's loss also trains the top
    block of the chunk below (the paper's overlapping local updates): that gradient is sent
    down one block and stops at that block's input, while the block's own chunk loss goes on
    down its chunk. The last block outputs the logits and is its chunk's head; the network's
    prediction is its output. One chunk covering the whole stack is back-propagation; ``chunk:
    1`` without overlap is DGL.

    Deviations: overlap is counted in blocks and is at most one block (make the blocks finer,
    e.g. one layer each, to overlap a single layer); the auxiliary head defaults to spatial
    averaging to 2x2 and one linear layer, the light head of the paper's vision experiments,
    sized for MNIST. The overlap is the engine's: under the ``overlap`` wiring a block that
    answers with a ``LocalLoss`` also learns from the gradient sent from above, which stops at
    its input (``engines/step.py``).
    """

    @dataclass(frozen=True)
    class Config:
        """Options of local parallel updates."""

        chunk: int = 1
        """Blocks per local loss (back-propagation inside a chunk); chunks are counted from
        the bottom and the top one may be shorter."""
        overlap: int = 0
        """1: a chunk's loss also trains the top block of the chunk below; 0: no overlap."""
        head: HeadConfig = field(default_factory=lambda: HeadConfig("mlp", depth=1))
        """The auxiliary classifier on the top block of every chunk but the last."""
        blocks: tuple[int, ...] = ()
        """Architecture block indices that start a new block (after the first); empty: the
        architecture's blocks."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            found = []
            if self.chunk < 1:
                found.append(("chunk", f"{self.chunk} is invalid: must be >= 1"))
            if self.overlap not in (0, 1):
                found.append(("overlap", f"{self.overlap} is invalid: must be 0 or 1 (blocks)"))
            starts = list(self.blocks)
            if starts != sorted(set(starts)) or any(k < 1 for k in starts):
                found.append(("blocks", f"{starts} is invalid: indices >= 1, strictly increasing"))
            return found

    # stale gradients would break the chunks' back-propagation: never stale_ok
    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="none", stale_ok=False)

    @property
    def wiring(self) -> Wiring:
        """``overlap`` with overlap (a gradient crosses a chunk boundary one block down at
        most); else ``gradient`` for chunks of several blocks (back-propagation inside a
        chunk); ``none`` for chunks of one block without overlap (nothing crosses a block)."""
        if self.config.overlap:
            return replace(self.default_wiring, backward="overlap")
        if self.config.chunk > 1:
            return replace(self.default_wiring, backward="gradient")
        return self.default_wiring

    def _is_top(self, k: int, num_blocks: int) -> bool:
        return (k + 1) % self.config.chunk == 0 or k == num_blocks - 1

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """An auxiliary head on the top block of every chunk but the last."""
        n = len(stack)
        return build_heads(stack, self.config.head, [k for k in range(n) if self._is_top(k, n)])

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """Inside a chunk: the gradient from above. A chunk's top block: its head's loss, plus
        (with overlap) the gradient of the chunk above, which stops at this block's input."""
        if not self._is_top(k, ctx.num_blocks):
            return OutputGradient(ctx.inbox["grad"])
        # with overlap (wiring ``overlap``) the engine also applies the gradient of the chunk
        # above to this block only; without, the chunk above's gradient is not used here
        return LocalLoss({"loss": head_loss(ctx)})
