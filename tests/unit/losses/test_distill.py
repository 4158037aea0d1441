"""SimCLRv2's distillation loss equals a hand-written per-example reference; the teacher is
fixed."""

from __future__ import annotations

import math

import pytest
import torch

from beyond_backprop.losses import distillation_loss


def reference_distillation(student: torch.Tensor, teacher: torch.Tensor, t: float) -> float:
    """-sum_y P_T(y|x; t) log P_S(y|x; t), averaged over examples, in Python floats."""
    total = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist(), strict=True):
        t_norm = sum(math.exp(v / t) for v in t_row)
        s_norm = sum(math.exp(v / t) for v in s_row)
        total -= sum(
            math.exp(tv / t) / t_norm * math.log(math.exp(sv / t) / s_norm)
            for sv, tv in zip(s_row, t_row, strict=True)
        )
    return total / len(student)


@pytest.mark.parametrize("n, k", [(1, 2), (7, 3), (32, 10)])
@pytest.mark.parametrize("t", [0.5, 1.0, 4.0])
def test_distillation_loss_equals_reference(n: int, k: int, t: float) -> None:
    student = 3 * torch.randn(n, k, dtype=torch.float64)
    teacher = 3 * torch.randn(n, k, dtype=torch.float64)
    expected = reference_distillation(student, teacher, t)
    assert distillation_loss(student, teacher, t).item() == pytest.approx(expected, rel=1e-10)


def test_the_teacher_gets_no_gradient_and_matching_is_the_minimum() -> None:
    student = torch.randn(5, 4, requires_grad=True)
    teacher = torch.randn(5, 4, requires_grad=True)
    distillation_loss(student, teacher, 2.0).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    # the cross-entropy is smallest (the teacher's entropy) when the student equals the teacher
    fixed = teacher.detach()
    matched = distillation_loss(fixed, fixed, 2.0)
    assert matched < distillation_loss(fixed + torch.randn(5, 4), fixed, 2.0)
    # ... and a shift of all logits changes nothing (a softmax)
    assert torch.allclose(distillation_loss(fixed + 3.0, fixed, 2.0), matched)


def test_distillation_loss_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="equal shape"):
        distillation_loss(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(torch.randn(4, 3), torch.randn(4, 3), 0.0)
