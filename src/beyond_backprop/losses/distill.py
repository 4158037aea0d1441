"""The distillation loss of SimCLRv2's third step (self-training with unlabeled examples)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0
) -> Tensor:
    """Cross-entropy from the teacher's to the student's tempered label distribution.

    SimCLRv2 (Chen et al. 2020, arXiv 2006.10029, Sec. 2, distillation loss): with
    ``P(y | x; t) = softmax(logits(x) / t)``, the loss of example ``x`` is
    ``-sum_y P_teacher(y | x; t) log P_student(y | x; t)``, averaged over the batch. The
    teacher is fixed: its logits are detached. No ``t**2`` factor (the paper has none).

    Args:
        student_logits: the student's class logits, shape ``(N, K)``.
        teacher_logits: the teacher's class logits for the same examples, shape ``(N, K)``.
        temperature: the temperature ``t`` (> 0) of both distributions.

    Returns:
        The scalar mean loss.

    Examples:
        >>> import torch
        >>> t = torch.tensor([[2.0, 0.0, -1.0]])
        >>> bool(distillation_loss(t, t) < distillation_loss(t.flip(1), t))
        True
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            "distillation_loss needs two (N, K) logits of equal shape, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    target = F.softmax(teacher_logits.detach() / temperature, dim=1)
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    return -(target * log_student).sum(dim=1).mean()
