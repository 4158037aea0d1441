"""Oracles for the feedback-alignment layers: B = W is backprop bitwise; with any B the weight
and bias gradients are unchanged and only the input gradient uses B."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from beyond_backprop.autograd import (
    FeedbackConv2d,
    FeedbackLinear,
    convert_to_feedback,
    feedback_layers,
    true_gradients,
)

LAYERS = {
    "linear": (lambda: nn.Linear(7, 5), (11, 7)),
    "linear_nobias": (lambda: nn.Linear(7, 5, bias=False), (11, 7)),
    "conv": (lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 9, 9)),
    "conv_strided_grouped": (
        lambda: nn.Conv2d(4, 6, 3, stride=2, padding=2, groups=2),
        (2, 4, 9, 9),
    ),
    "conv_dilated_nobias": (lambda: nn.Conv2d(3, 4, 3, dilation=2, bias=False), (2, 3, 9, 9)),
}


def _grads(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = layer(x)
    params = [p for p in layer.parameters()]
    return [out.detach(), *torch.autograd.grad(out, [x, *params], g)]


def _convert(layer: nn.Module, feedback: torch.Tensor | None) -> nn.Module:
    wrapped = nn.Sequential(copy.deepcopy(layer))
    convert_to_feedback(wrapped, lambda w: w.clone() if feedback is None else feedback)
    return wrapped[0]


@pytest.mark.parametrize("name", list(LAYERS))
def test_feedback_equal_to_weight_is_backprop_bitwise(name: str) -> None:
    make, shape = LAYERS[name]
    layer = make()
    x = torch.randn(shape)
    g = torch.randn_like(layer(x))
    for ours, theirs in zip(_grads(_convert(layer, None), x, g), _grads(layer, x, g), strict=True):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name", list(LAYERS))
def test_weight_gradient_unchanged_input_gradient_uses_feedback(name: str) -> None:
    make, shape = LAYERS[name]
    layer = make()
    x = torch.randn(shape)
    g = torch.randn_like(layer(x))
    feedback = torch.randn_like(layer.weight)
    out, grad_x, *param_grads = _grads(_convert(layer, feedback), x, g)
    ref_out, _, *ref_param_grads = _grads(layer, x, g)
    assert torch.equal(out, ref_out)
    for ours, theirs in zip(param_grads, ref_param_grads, strict=True):
        assert torch.equal(ours, theirs)
    if isinstance(layer, nn.Linear):
        expected = g @ feedback
    else:
        # the input gradient of a conv is the transposed conv of the error with the kernel
        expected = torch.nn.grad.conv2d_input(
            x.shape, feedback, g, layer.stride, layer.padding, layer.dilation, layer.groups
        )
    torch.testing.assert_close(grad_x, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(grad_x, _grads(layer, x, g)[1])


def test_convert_shares_parameters_reports_and_keeps_feedback_as_buffer() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    )
    weights = [model[0].weight, model[2][1].weight]
    report = convert_to_feedback(model, torch.zeros_like)
    assert report == [
        "0: Conv2d(1, 2, k=(3, 3)) -> FeedbackConv2d",
        "2.1: Linear(8, 3) -> FeedbackLinear",
    ]
    assert isinstance(model[0], FeedbackConv2d) and isinstance(model[2][1], FeedbackLinear)
    assert model[0].weight is weights[0] and model[2][1].weight is weights[1]
    assert set(model.state_dict()) >= {"0.feedback", "2.1.feedback"}
    assert all(
        p is not layer.feedback for layer in feedback_layers(model) for p in model.parameters()
    )
    assert not any("feedback" in name for name, _ in model.named_parameters())
    assert convert_to_feedback(model, torch.zeros_like) == []  # already converted


def test_true_gradients_switches_back_to_backprop_and_restores() -> None:
    layer = nn.Linear(4, 3)
    converted = _convert(layer, torch.randn(3, 4))
    x, g = torch.randn(5, 4), torch.randn(5, 3)
    with true_gradients(converted):
        assert torch.equal(_grads(converted, x, g)[1], _grads(layer, x, g)[1])
    assert converted.use_feedback
    assert not torch.equal(_grads(converted, x, g)[1], _grads(layer, x, g)[1])


def test_string_padding_is_refused() -> None:
    with pytest.raises(ValueError, match="numeric zero padding"):
        convert_to_feedback(nn.Sequential(nn.Conv2d(1, 2, 3, padding="same")), torch.zeros_like)


def test_feedback_layer_trains_end_to_end() -> None:
    """A tiny regression with FA still lowers its loss (the weights align with B)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    convert_to_feedback(model, lambda w: torch.randn_like(w) * 0.3)
    x = torch.randn(64, 4)
    y = x @ torch.randn(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    first = F.mse_loss(model(x), y).item()
    for _ in range(200):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
    assert F.mse_loss(model(x), y).item() < 0.2 * first
