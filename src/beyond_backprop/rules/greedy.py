"""Greedy layerwise learning: blocks trained one after another, earlier ones frozen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from beyond_backprop.models.heads import HeadConfig
from beyond_backprop.rules.base import Wiring
from beyond_backprop.rules.dgl import DGL
from beyond_backprop.rules.registry import register_rule


@register_rule("greedy", "greedy layerwise learning: one block at a time, earlier ones frozen")
class GreedyLayerwise(DGL):
    """Greedy layerwise learning (Belilovsky, Eickenberg and Oyallon, arXiv 1812.11446).

    Block j is trained alone for ``epochs_per_block`` epochs on the cross-entropy of an
    auxiliary classifier on its output (Sec. 3.1, the auxiliary problem of depth k), with the
    blocks below it frozen (they run without gradients, in eval mode) and the blocks above it
    not yet used; then block j+1 starts from block j's frozen output (Algorithm 1). The last
    block outputs the logits and is its own classifier; the network's prediction is its output.

    In this library greedy is DGL trained one block at a time: the same heads, objective and
    predictions (inherited from ``DGL``), with ``active_blocks`` and ``total_epochs`` set.

    Deviations: the paper's invertible downsampling and its ImageNet-sized widths are left out;
    the auxiliary network is the paper's family (``k - 1`` 3x3 convolutions, averaging to 2x2,
    a linear layer) with ``head.depth`` as k. Training length is ``epochs_per_block`` times the
    number of blocks; ``train.epochs`` is not used.
    """

    @dataclass(frozen=True)
    class Config(DGL.Config):
        """Options of greedy layerwise learning (DGL's, with the paper's conv head)."""

        epochs_per_block: int = 1
        """Epochs each block trains for before the next one starts."""
        head: HeadConfig = field(default_factory=lambda: HeadConfig("conv", depth=2, width=64))
        """The auxiliary classifier (``kind: conv``, ``depth`` = the paper's k)."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            if self.epochs_per_block < 1:
                return [("epochs_per_block", f"{self.epochs_per_block} is invalid: must be >= 1")]
            return []

    # stale_ok is False: one block learns at a time, so there is nothing to run asynchronously
    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="none", stale_ok=False)

    def total_epochs(self, epochs: int, num_blocks: int) -> int:
        """``epochs_per_block`` for every block, one block after another."""
        return self.config.epochs_per_block * num_blocks

    def active_blocks(self, epoch: int, num_blocks: int) -> Sequence[int]:
        """The one block whose turn it is."""
        return [min(epoch // self.config.epochs_per_block, num_blocks - 1)]
