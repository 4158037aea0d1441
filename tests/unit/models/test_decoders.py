"""Reconstruction decoders: every block output shape paints the input image's shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from beyond_backprop.models.decoders import ChannelwiseLinear, Critic, ReconstructionDecoder


@pytest.mark.parametrize(
    ("in_shape", "out_shape"),
    [((16, 14, 14), (1, 28, 28)),  # the MNIST CNN's blocks
     ((32, 7, 7), (1, 28, 28)),
     ((8, 2, 2), (1, 8, 8)),  # scikit-learn digits
     ((8, 3, 3), (3, 10, 9)),  # a grid that does not divide the image: resized
     ((32,), (1, 28, 28)),  # an MLP block
     ((5,), (2, 3, 4))],
)  # fmt: skip
def test_decoder_paints_the_image_shape(
    in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> None:
    decoder = ReconstructionDecoder(in_shape, out_shape, width=8, pool=7)
    h = torch.randn(3, *in_shape, requires_grad=True)
    image = decoder(h)
    assert image.shape == (3, *out_shape)
    image.sum().backward()
    assert h.grad is not None and all(p.grad is not None for p in decoder.parameters())
    convolutional = any(isinstance(m, ChannelwiseLinear) for m in decoder.modules())
    assert convolutional == (len(in_shape) == 3)


def test_channelwise_layer_is_one_linear_map_per_channel() -> None:
    layer = ChannelwiseLinear(3, 4)
    h = torch.randn(2, 3, 4)
    out = layer(h)
    for c in range(3):
        expected = nn.functional.linear(h[:, c], layer.weight[c], layer.bias[c])
        torch.testing.assert_close(out[:, c], expected)


def test_every_output_pixel_depends_on_the_whole_feature_map() -> None:
    """The channel-wise fully connected layer: a far corner of the features reaches the
    middle of the image (a conv decoder would not)."""
    decoder = ReconstructionDecoder((4, 7, 7), (1, 28, 28), width=8, pool=7)
    h = torch.randn(1, 4, 7, 7, requires_grad=True)
    decoder(h)[0, 0, 14, 14].backward()
    assert h.grad is not None and bool((h.grad[0, :, 0, 0] != 0).any())


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(D,\)"):
        ReconstructionDecoder((2, 3), (1, 8, 8), 8, 7)
    with pytest.raises(ValueError, match="paints images"):
        ReconstructionDecoder((4,), (64,), 8, 7)


def test_critic_gives_one_logit_per_image() -> None:
    assert Critic((1, 28, 28), 8)(torch.randn(5, 1, 28, 28)).shape == (5,)
