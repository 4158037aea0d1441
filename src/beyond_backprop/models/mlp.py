"""A fully connected network, one hidden layer per block."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from torch import nn

from beyond_backprop.models.registry import register_architecture
from beyond_backprop.models.stack import BlockStack

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


@register_architecture("mlp", "fully connected: one hidden layer per block, a linear classifier")
@dataclass(frozen=True)
class MLPConfig:
    """Blocks ``[Flatten] Linear -> [BatchNorm] -> activation [-> Dropout]``, then ``Linear``."""

    hidden: tuple[int, ...] = (1024, 1024, 1024)
    """Width of each hidden block."""
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    """Nonlinearity after each hidden linear layer."""
    batch_norm: bool = False
    """BatchNorm1d after each hidden linear layer."""
    dropout: float = 0.0
    """Dropout probability after each hidden activation."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        if any(width < 1 for width in self.hidden):
            found.append(("hidden", f"{list(self.hidden)} is invalid: every width must be >= 1"))
        if not 0 <= self.dropout < 1:
            found.append(("dropout", f"{self.dropout} is invalid: must be in [0, 1)"))
        return found

    @classmethod
    def debug(cls) -> MLPConfig:
        """Two tiny hidden blocks."""
        return cls(hidden=(16, 16))

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> BlockStack:
        """Hidden blocks then the classifier block; the first block flattens its input."""
        width = math.prod(input_shape)
        blocks: list[nn.Module] = []
        for k, out in enumerate(self.hidden):
            layers: list[nn.Module] = [nn.Flatten()] if k == 0 else []
            layers.append(nn.Linear(width, out))
            if self.batch_norm:
                layers.append(nn.BatchNorm1d(out))
            layers.append(ACTIVATIONS[self.activation]())
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            blocks.append(nn.Sequential(*layers))
            width = out
        head: list[nn.Module] = [] if self.hidden else [nn.Flatten()]
        blocks.append(nn.Sequential(*head, nn.Linear(width, num_classes)))
        return BlockStack(blocks, input_shape)
