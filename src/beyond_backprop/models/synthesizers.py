"""Synthesizers of Decoupled Neural Interfaces (Jaderberg et al., arXiv 1608.05343).

``GradientSynthesizer`` M(h[, y]) predicts the gradient of the loss with respect to a block's
output ``h`` (optionally conditioned on the one-hot label ``y``: cDNI); ``InputSynthesizer``
I(x) predicts a block's input from the network input (forward unlocking, Section 3.3 of the
paper). Both follow the paper's appendix: a few hidden layers (fully connected layers of 1024
units for vector features, 5x5 convolutions of 128 channels for feature maps), each followed by
batch normalisation and ReLU, and a final layer initialised at zero, so that a synthesizer
starts by predicting zero and the network starts like one whose blocks receive no gradient.

Examples:
    >>> import torch
    >>> m = GradientSynthesizer((16,), num_classes=10, hidden_layers=1, width=32)
    >>> h = torch.randn(4, 16)
    >>> y = torch.nn.functional.one_hot(torch.arange(4), 10).float()
    >>> bool((m(h, y) == 0).all())  # the zero-initialised last layer
    True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from beyond_backprop.models.layers import in_fp32


def _zero_(layer: nn.Linear | nn.Conv2d) -> None:
    """Zero the last layer: the paper's initialisation of every synthesizer's output."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _hidden_stack(
    in_features: int, width: int, hidden_layers: int, batch_norm: bool, conv: bool
) -> tuple[list[nn.Module], int]:
    """Hidden layers ``[Linear|Conv5x5] -> [BN] -> ReLU``; returns them and the last width."""
    layers: list[nn.Module] = []
    for _ in range(hidden_layers):
        if conv:
            layers.append(nn.Conv2d(in_features, width, 5, padding=2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
        else:
            layers.append(nn.Linear(in_features, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        in_features = width
    return layers, in_features


class GradientSynthesizer(nn.Module):
    """M(h[, y]): a synthetic gradient for activations ``h`` of shape ``feature_shape``.

    Vector features (``(d,)``) use fully connected layers; feature maps (``(C, H, W)``) use
    5x5 convolutions that keep the spatial size, with the one-hot label (cDNI) given as
    ``num_classes`` constant channels. The output has the shape of ``h``.

    Args:
        feature_shape: shape of one example's activation, without the batch dimension.
        num_classes: size of the one-hot label for conditioning (cDNI); 0 for plain DNI.
        hidden_layers: hidden layers before the zero-initialised output layer (0: linear).
        width: units (vector features) or channels (feature maps) of each hidden layer.
        batch_norm: batch normalisation after each hidden layer.
    """

    def __init__(
        self,
        feature_shape: tuple[int, ...],
        num_classes: int = 0,
        hidden_layers: int = 2,
        width: int = 1024,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if len(feature_shape) not in (1, 3):
            raise ValueError(f"synthesizers take (d,) or (C, H, W) features, got {feature_shape}")
        self.feature_shape = tuple(feature_shape)
        self.num_classes = num_classes
        self.conv = len(feature_shape) == 3
        in_features = feature_shape[0] + num_classes
        layers, last = _hidden_stack(in_features, width, hidden_layers, batch_norm, self.conv)
        out: nn.Linear | nn.Conv2d = (
            nn.Conv2d(last, feature_shape[0], 5, padding=2)
            if self.conv
            else nn.Linear(last, feature_shape[0])
        )
        _zero_(out)
        self.net = nn.Sequential(*layers, out)

    def forward(self, h: Tensor, y_onehot: Tensor | None = None) -> Tensor:
        """The synthetic gradient for ``h``; ``y_onehot`` (batch, num_classes) for cDNI."""
        if (y_onehot is None) != (self.num_classes == 0):
            raise ValueError(
                f"this synthesizer expects {'a' if self.num_classes else 'no'} one-hot label"
            )
        if y_onehot is not None:
            if self.conv:
                y_onehot = y_onehot[:, :, None, None].expand(-1, -1, *h.shape[2:])
            h = torch.cat([h, y_onehot.to(h.dtype)], dim=1)
        with in_fp32(h) as h32:  # the synthesizer and its regression stay in fp32
            return self.net(h32)


class InputSynthesizer(nn.Module):
    """I(x): a synthetic input for a block, predicted from the network input ``x``.

    A fully connected network on the flattened input (hidden layers with batch norm and
    ReLU), reshaped to ``target_shape``. Unlike the gradient synthesizer its last layer keeps
    PyTorch's default initialisation: a zero synthetic input has no use as a starting point.

    Args:
        input_shape: shape of one network input example.
        target_shape: shape of one example of the block input to predict.
        hidden_layers: hidden layers before the output layer.
        width: units of each hidden layer.
        batch_norm: batch normalisation after each hidden layer.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        target_shape: tuple[int, ...],
        hidden_layers: int = 2,
        width: int = 1024,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.target_shape = tuple(target_shape)
        layers, last = _hidden_stack(
            math.prod(input_shape), width, hidden_layers, batch_norm, conv=False
        )
        self.net = nn.Sequential(nn.Flatten(), *layers, nn.Linear(last, math.prod(target_shape)))

    def forward(self, x: Tensor) -> Tensor:
        """The synthetic block input for network input ``x``."""
        with in_fp32(x) as x32:
            return self.net(x32).reshape(x.shape[0], *self.target_shape)


class DNILocal(nn.Module):
    """What DNI places beside one block: its gradient synthesizer (every block but the top)
    and its input synthesizer (every block but the first, when synthetic inputs are on)."""

    def __init__(
        self, gradient: GradientSynthesizer | None, input_synth: InputSynthesizer | None
    ) -> None:
        super().__init__()
        self.gradient = gradient
        self.input_synth = input_synth
