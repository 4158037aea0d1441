"""Forward gradients: an unbiased gradient estimate from forward-mode AD alone (Baydin, Pearlmutter,
Syme, Wood and Torr, arXiv 2202.08587, Sec. 3, Algorithm 1).

For a scalar f and a tangent v ~ N(0, I), the directional derivative ``d = grad f . v`` comes
from one forward-mode pass (``torch.func.jvp``), and ``g = d v`` satisfies ``E[g] = grad f``
(since ``E[v v^T] = I``). Averaging K independent tangents divides the variance by K; for one
tangent ``E|g - grad f|^2 = (n + 1) |grad f|^2`` grows with the dimension n (tested).

``with_gradient`` turns such an estimate into something an engine can apply: a scalar whose
value is the loss and whose gradient, when back-propagated, is the estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def forward_gradient(
    fn: Callable[..., Tensor], primals: Sequence[Tensor], num_tangents: int = 1
) -> tuple[Tensor, list[Tensor]]:
    """``fn(*primals)`` and the forward-gradient estimate of its gradient w.r.t. each primal.

    Args:
        fn: a scalar function of the primals.
        primals: the point (detached tensors).
        num_tangents: K, the number of tangents averaged, ``1/K sum_k (grad f . v_k) v_k``.
    Returns:
        The value (from the first pass) and one estimate per primal, shaped like it.
    The tangents are drawn from torch's global generator, one ``randn`` per primal in order.
    """
    if num_tangents < 1:
        raise ValueError(f"num_tangents must be >= 1, got {num_tangents}")
    primals = tuple(p.detach() for p in primals)
    estimates = [torch.zeros_like(p) for p in primals]
    value = torch.zeros((), device=primals[0].device if primals else None)
    for k in range(num_tangents):
        tangents = tuple(torch.randn_like(p) for p in primals)
        out, directional = torch.func.jvp(fn, primals, tangents)[:2]
        if k == 0:
            value = out.detach()
        for estimate, tangent in zip(estimates, tangents, strict=True):
            estimate.add_(directional.detach() * tangent)
    return value, [e / num_tangents for e in estimates]


def with_gradient(value: Tensor, pairs: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
    """A scalar equal to ``value`` whose backward pass leaves ``grad`` in each ``tensor`` of
    ``pairs`` (``(tensor, grad)``; a non-leaf tensor passes it on to what made it)."""
    surrogate = sum(
        ((t * g.detach()).sum() for t, g in pairs),
        torch.zeros((), device=pairs[0][0].device if pairs else None),
    )
    # s - s.detach() is exactly 0 in value and has gradient ds: the value stays the loss
    return value.detach() + (surrogate - surrogate.detach())
