"""Custom autograd: feedback-alignment layers (the error goes down through fixed B, not W^T),
and in ``alignment`` the angles between a rule's update and the true gradient."""

from beyond_backprop.autograd.feedback import (
    FeedbackConv2d,
    FeedbackConv2dFunction,
    FeedbackLinear,
    FeedbackLinearFunction,
    convert_to_feedback,
    feedback_layers,
    true_gradients,
)

__all__ = [
    "FeedbackConv2d",
    "FeedbackConv2dFunction",
    "FeedbackLinear",
    "FeedbackLinearFunction",
    "convert_to_feedback",
    "feedback_layers",
    "true_gradients",
]
