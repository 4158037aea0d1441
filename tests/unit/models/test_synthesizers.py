"""Synthesizer modules: the paper's zero-initialised output, shapes, label conditioning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from beyond_backprop.models.synthesizers import GradientSynthesizer, InputSynthesizer


@pytest.mark.parametrize("shape", [(12,), (3, 6, 6)], ids=["vector", "maps"])
@pytest.mark.parametrize("num_classes", [0, 5])
def test_gradient_synthesizer_starts_at_zero_with_the_activation_shape(
    shape: tuple[int, ...], num_classes: int
) -> None:
    torch.manual_seed(0)
    synth = GradientSynthesizer(shape, num_classes, hidden_layers=2, width=8)
    h = torch.randn(4, *shape)
    label = F.one_hot(torch.arange(4) % 5, 5).float() if num_classes else None
    out = synth(h, label)
    assert out.shape == h.shape
    assert torch.equal(out, torch.zeros_like(h))
    last = synth.net[-1]
    assert isinstance(last, nn.Conv2d if len(shape) == 3 else nn.Linear)
    # the first layer sees the activation and, for cDNI, the label
    assert synth.net[0].weight.shape[1] == shape[0] + num_classes


def test_conditioning_reaches_the_output_for_feature_maps() -> None:
    torch.manual_seed(0)
    synth = GradientSynthesizer((2, 4, 4), num_classes=3, hidden_layers=1, width=4)
    nn.init.normal_(synth.net[-1].weight)
    synth.eval()
    h = torch.randn(2, 2, 4, 4)
    a = synth(h, F.one_hot(torch.tensor([0, 1]), 3).float())
    b = synth(h, F.one_hot(torch.tensor([2, 2]), 3).float())
    assert not torch.equal(a, b)


def test_linear_synthesizer_has_no_hidden_layer() -> None:
    synth = GradientSynthesizer((6,), hidden_layers=0)
    assert len(synth.net) == 1 and isinstance(synth.net[0], nn.Linear)


def test_label_must_match_the_conditioning() -> None:
    plain = GradientSynthesizer((4,), num_classes=0, hidden_layers=0)
    conditioned = GradientSynthesizer((4,), num_classes=3, hidden_layers=0)
    h = torch.randn(2, 4)
    with pytest.raises(ValueError, match="expects no one-hot label"):
        plain(h, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expects a one-hot label"):
        conditioned(h)
    with pytest.raises(ValueError, match="features"):
        GradientSynthesizer((2, 3))


def test_input_synthesizer_predicts_the_block_input_shape() -> None:
    synth = InputSynthesizer((1, 8, 8), (4, 4, 4), hidden_layers=1, width=16)
    assert synth(torch.randn(3, 1, 8, 8)).shape == (3, 4, 4, 4)
