"""Greedy layerwise learning: blocks trained one after another, earlier ones frozen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from beyond_backprop.models.heads import HeadConfig
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import Wiring
from beyond_backprop.rules.dgl import DGL
from beyond_backprop.rules.registry import register_rule


class InvertibleDownsampling(nn.Module):
    """psi of i-RevNet (Jacobsen et al., arXiv 1802.07088, Sec. 3.1), as the greedy paper uses it
    (1812.11446, Sec. 3.1): every 2x2 pixel block becomes 4 channels, ``(C, H, W) -> (4C, H/2,
    W/2)``; nothing is lost, unlike pooling."""

    def forward(self, x: Tensor) -> Tensor:
        """Rearrange; the side must be even."""
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"invertible downsampling needs even sides, got {h}x{w}")
        x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(b, 4 * c, h // 2, w // 2)


def _swap_pooling(module: nn.Module, where: str) -> list[str]:
    """Replace every 2x2 pooling directly followed by a convolution with ``psi`` and a
    convolution of 4x the input channels (same output shape); returns one line per swap."""
    report: list[str] = []
    for name, child in module.named_children():
        report += _swap_pooling(child, f"{where}.{name}")
    if not isinstance(module, nn.Sequential):
        return report
    layers = list(module)
    for i in range(len(layers) - 1):
        pool, conv = layers[i], layers[i + 1]
        pools = isinstance(pool, nn.MaxPool2d | nn.AvgPool2d) and pool.kernel_size in (2, (2, 2))
        if pools and isinstance(conv, nn.Conv2d):
            module[i] = InvertibleDownsampling()
            module[i + 1] = nn.Conv2d(
                4 * conv.in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                conv.stride, conv.padding, bias=conv.bias is not None,  # type: ignore[arg-type]
            )  # fmt: skip
            report.append(f"{where}.{i}: {type(pool).__name__} -> invertible downsampling")
    return report


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

    As in the authors' code, the learning-rate schedule (``optim``) starts over for every
    block (``lr_per_block``), the auxiliary network has BatchNorm (``k - 1`` 3x3 conv + BN +
    ReLU, averaging to 2x2, BN, a linear layer; ``head.depth`` is k), and ``ensemble: true``
    makes the network's prediction the mean of the softmax outputs of every block's classifier
    (the paper's per-layer ensemble, Sec. 4.1); each block's own prediction is scored beside it.

    ``downsampling: invertible`` swaps every 2x2 pooling that feeds a convolution for the
    paper's invertible downsampling (``InvertibleDownsampling``, the convolution then reads 4x
    the channels), as in its CIFAR-10 models (Sec. 3.1 and 4.1).

    Deviations: the ImageNet-sized widths are not set here (the presets choose the widths).
    Training length is ``epochs_per_block`` times the number of blocks; ``train.epochs`` is
    not used.
    """

    @dataclass(frozen=True)
    class Config(DGL.Config):
        """Options of greedy layerwise learning (DGL's, with the paper's conv head)."""

        epochs_per_block: int = 1
        """Epochs each block trains for before the next one starts."""
        head: HeadConfig = field(
            default_factory=lambda: HeadConfig("conv", depth=2, width=64, batchnorm=True)
        )
        """The auxiliary classifier (``kind: conv``, ``depth`` = the paper's k)."""
        lr_per_block: bool = True
        """Restart the learning-rate schedule for every block (the authors' code); false:
        one schedule over the whole run."""
        downsampling: Literal["architecture", "invertible"] = "architecture"
        """``architecture``: the architecture's pooling; ``invertible``: 2x2 poolings that feed
        a convolution become the paper's invertible downsampling."""
        ensemble: bool = False
        """The network's prediction: the mean softmax of every block's classifier (true), or
        the last block's output (false)."""

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

    def prepare(self, stack: BlockStack) -> list[str]:
        """DGL's block grouping, then the invertible downsampling when asked for."""
        report = super().prepare(stack)
        if self.config.downsampling == "invertible":
            swaps = _swap_pooling(stack.blocks, "blocks")
            if not swaps:
                raise ValueError(
                    "rule.downsampling: 'invertible' found no 2x2 pooling followed by a "
                    "convolution in this architecture (valid there: 'architecture')"
                )
            report += swaps
        return report

    def lr_phase_epochs(self, epochs: int, num_blocks: int) -> int | None:
        """Each block's turn is one learning-rate schedule (``lr_per_block``)."""
        return self.config.epochs_per_block if self.config.lr_per_block else None

    def active_blocks(self, epoch: int, num_blocks: int) -> Sequence[int]:
        """The one block whose turn it is."""
        return [min(epoch // self.config.epochs_per_block, num_blocks - 1)]

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """DGL's, with the per-layer ensemble as the network's prediction if asked for: the
        log of the mean of every block's softmax (so its cross-entropy is the ensemble's)."""
        out = super().predictions(stack, locals_, x)
        if self.config.ensemble:
            probs = torch.stack([out[k].softmax(dim=1) for k in range(len(stack)) if k in out])
            out[None] = probs.mean(dim=0).log()
        return out
