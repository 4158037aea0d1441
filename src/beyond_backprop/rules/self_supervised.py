"""What the self-supervised rules share (``simclr``, ``loco``, ``gim``, ``inpaint``,
``pretext``): an encoder, every block below the stack's classifier block, read by online
linear probes (``models/probes.py``).

The classifier block expects the encoder's output but no objective trains it, so it does not
run; each encoder block has a linear probe on its detached output, and the probes are what
evaluation scores (the top encoder block's probe is the network's prediction).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from beyond_backprop.models.probes import encoder_features, probe_predictions
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import LearningRule


def encoder_blocks(stack: BlockStack, rule: str) -> range:
    """The encoder of a self-supervised rule: every block below the classifier (last) block."""
    if len(stack) < 2:
        raise ValueError(f"{rule} needs at least one block below the classifier block")
    return range(len(stack) - 1)


class SelfSupervisedRule(LearningRule):
    """Base of the self-supervised rules: the encoder trains, the classifier block sits out,
    and predictions are the probes on the encoder's features (a rule's ``block_features``
    when it has one, e.g. GIM's patch grid; else the encoder blocks' outputs)."""

    def active_blocks(self, epoch: int, num_blocks: int) -> range:
        """The encoder: the classifier block does not run."""
        return range(num_blocks - 1)

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """Each encoder block's linear probe (None: the top block's)."""
        return probe_predictions(encoder_features(self, stack, x), locals_)
