"""Feedback alignment layers: the forward pass uses W, the backward pass sends the error down
through a fixed matrix B instead of W^T (Lillicrap et al., arXiv 1411.0247, eq. of Fig. 1).

``FeedbackLinear`` and ``FeedbackConv2d`` are drop-in subclasses of ``nn.Linear`` and
``nn.Conv2d`` that share the original layer's parameters and keep B as a buffer of the weight's
shape: saved in checkpoints with the model, never seen by an optimizer (so never trained and
never touched by weight decay). The weight and bias gradients are the usual ones (they need the
layer's input and the incoming error only); only the input gradient uses B. With B = W every
gradient is bitwise the one autograd computes for the plain layer (tested).

``convert_to_feedback`` swaps every Linear / Conv2d inside a module; ``true_gradients`` makes
the swapped layers behave like the plain ones for a while (the diagnostics compare against the
true gradient that way). With a ``feedback_fn`` the matrix used in the backward pass is not the
buffer itself but ``feedback_fn(W, buffer)``, computed from the current weight at every forward
pass (sign-symmetric feedback: ``sign(W)`` times magnitudes kept in the buffer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.models.layers import in_fp32

FeedbackInit = Callable[[Tensor], Tensor]
"""Draws B for a weight: takes the weight, returns a new tensor of its shape."""
FeedbackFn = Callable[[Tensor, Tensor], Tensor]
"""Computes the backward matrix from (the current weight, detached; the layer's buffer)."""


class FeedbackLinearFunction(torch.autograd.Function):
    """``y = x W^T + b`` forward; backward ``dx = dy B`` with the usual ``dW`` and ``db``."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor
    ) -> Tensor:
        ctx.save_for_backward(x, feedback)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, feedback = ctx.saved_tensors
        # the same products, in the same orientation, as autograd's linear backward, so that
        # B = W reproduces backprop bitwise (x^T dy, transposed, differs in the last bit)
        grad2d = grad_out.reshape(-1, grad_out.shape[-1])
        x2d = x.reshape(-1, x.shape[-1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad2d.mm(feedback).reshape(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = grad2d.t().mm(x2d)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad2d.sum(0)
        return grad_x, grad_w, grad_b, None


class FeedbackConv2dFunction(torch.autograd.Function):
    """A 2-d convolution whose input gradient is the transposed convolution with B."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        feedback: Tensor,
        geometry: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int],
    ) -> Tensor:
        stride, padding, dilation, groups = geometry
        ctx.save_for_backward(x, feedback)
        ctx.geometry = geometry
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # the kernel autograd itself calls for conv2d, given B in place of W: the weight and
        # bias gradients do not read the weight, the input gradient reads B
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out,
            x,
            feedback,
            [feedback.shape[0]] if ctx.has_bias else None,
            list(stride),
            list(padding),
            list(dilation),
            False,
            [0, 0],
            groups,
            [need_x, need_w, ctx.has_bias and need_b],
        )
        return grad_x, grad_w, grad_b if ctx.has_bias else None, None, None


class FeedbackLinear(nn.Linear):
    """``nn.Linear`` whose error goes down through the buffer ``feedback`` (B, shaped like W)."""

    feedback: Tensor
    use_feedback: bool
    feedback_fn: FeedbackFn | None

    @classmethod
    def from_linear(
        cls, layer: nn.Linear, init: FeedbackInit, feedback_fn: FeedbackFn | None = None
    ) -> FeedbackLinear:
        """A feedback layer sharing ``layer``'s parameters, with B drawn by ``init``."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = layer.in_features, layer.out_features
        new.weight, new.bias = layer.weight, layer.bias
        new.register_buffer("feedback", init(layer.weight.detach()).contiguous())
        new.use_feedback = True
        new.feedback_fn = feedback_fn
        return new

    def backward_matrix(self) -> Tensor:
        """The matrix the error goes down through: B, or ``feedback_fn(W, B)``."""
        return _backward_matrix(self)

    def forward(self, x: Tensor) -> Tensor:
        """``F.linear`` forward; the backward uses B when ``use_feedback`` is set."""
        if not self.use_feedback:
            return F.linear(x, self.weight, self.bias)
        with in_fp32(x) as x32:
            out: Tensor = FeedbackLinearFunction.apply(
                x32, self.weight, self.bias, self.backward_matrix()
            )
        return out


class FeedbackConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose error goes down through the buffer ``feedback`` (B, shaped like W)."""

    feedback: Tensor
    use_feedback: bool
    feedback_fn: FeedbackFn | None

    @classmethod
    def from_conv(
        cls, layer: nn.Conv2d, init: FeedbackInit, feedback_fn: FeedbackFn | None = None
    ) -> FeedbackConv2d:
        """A feedback layer sharing ``layer``'s parameters, with B drawn by ``init``."""
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ValueError(
                f"feedback alignment supports Conv2d with numeric zero padding only, got "
                f"padding={layer.padding!r}, padding_mode={layer.padding_mode!r}"
            )
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        for name in (
            "in_channels",
            "out_channels",
            "kernel_size",
            "stride",
            "padding",
            "dilation",
            "transposed",
            "output_padding",
            "groups",
            "padding_mode",
            "_reversed_padding_repeated_twice",
        ):
            setattr(new, name, getattr(layer, name))
        new.weight, new.bias = layer.weight, layer.bias
        new.register_buffer("feedback", init(layer.weight.detach()).contiguous())
        new.use_feedback = True
        new.feedback_fn = feedback_fn
        return new

    def backward_matrix(self) -> Tensor:
        """The kernel the error goes down through: B, or ``feedback_fn(W, B)``."""
        return _backward_matrix(self)

    def forward(self, x: Tensor) -> Tensor:
        """``F.conv2d`` forward; the backward uses B when ``use_feedback`` is set."""
        if not self.use_feedback:
            return F.conv2d(
                x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
            )
        geometry = (tuple(self.stride), tuple(self.padding), tuple(self.dilation), self.groups)
        with in_fp32(x) as x32:
            out: Tensor = FeedbackConv2dFunction.apply(
                x32, self.weight, self.bias, self.backward_matrix(), geometry
            )
        return out


FEEDBACK_LAYERS = (FeedbackLinear, FeedbackConv2d)


def _backward_matrix(layer: FeedbackLinear | FeedbackConv2d) -> Tensor:
    if layer.feedback_fn is None:
        return layer.feedback
    # computed at the forward pass from the weight as it is now, so the backward pass of this
    # step uses the weight that produced the output (it changes only at the optimizer step)
    return layer.feedback_fn(layer.weight.detach(), layer.feedback).contiguous()


def convert_to_feedback(
    module: nn.Module, init: FeedbackInit, prefix: str = "", feedback_fn: FeedbackFn | None = None
) -> list[str]:
    """Replace every ``nn.Linear`` and ``nn.Conv2d`` inside ``module`` (in place, depth first,
    in registration order so B is drawn in a fixed order) by its feedback version; with
    ``feedback_fn`` the backward matrix is ``feedback_fn(W, buffer)`` (see the module's doc).

    Returns one line per converted layer, e.g. ``blocks.0.1: Linear(784, 1024) -> FeedbackLinear``.
    """
    report = []
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if isinstance(child, FEEDBACK_LAYERS):
            continue
        if isinstance(child, nn.Linear):
            new: nn.Module = FeedbackLinear.from_linear(child, init, feedback_fn)
            shape = f"({child.in_features}, {child.out_features})"
            report.append(f"{path}: Linear{shape} -> FeedbackLinear")
        elif isinstance(child, nn.Conv2d):
            new = FeedbackConv2d.from_conv(child, init, feedback_fn)
            shape = f"({child.in_channels}, {child.out_channels}, k={child.kernel_size})"
            report.append(f"{path}: Conv2d{shape} -> FeedbackConv2d")
        else:
            report.extend(convert_to_feedback(child, init, f"{path}.", feedback_fn))
            continue
        setattr(module, name, new)
    return report


def feedback_layers(module: nn.Module) -> list[FeedbackLinear | FeedbackConv2d]:
    """The feedback layers inside ``module``, in registration order."""
    return [m for m in module.modules() if isinstance(m, FEEDBACK_LAYERS)]


@contextmanager
def true_gradients(module: nn.Module) -> Iterator[None]:
    """Within the block, the feedback layers of ``module`` back-propagate with W^T (plain
    backprop); restored afterwards."""
    layers = feedback_layers(module)
    saved = [layer.use_feedback for layer in layers]
    for layer in layers:
        layer.use_feedback = False
    try:
        yield
    finally:
        for layer, flag in zip(layers, saved, strict=True):
            layer.use_feedback = flag
