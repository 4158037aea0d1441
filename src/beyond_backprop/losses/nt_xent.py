"""NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent loss of two batches of projections (Chen et al. 2020, arXiv 2002.05709, Sec. 2.1).

    Row ``i`` of ``z1`` and row ``i`` of ``z2`` are the two views of example ``i`` (a positive
    pair); every other of the ``2N`` rows is a negative. With cosine similarities ``s`` the loss
    of anchor ``i`` with positive ``j`` is ``-log(exp(s_ij / t) / sum_{k != i} exp(s_ik / t))``,
    averaged over all ``2N`` anchors (both ``(i, j)`` and ``(j, i)``).

    Args:
        z1: projections of the first views, shape ``(N, D)``.
        z2: projections of the second views, shape ``(N, D)``.
        temperature: the temperature ``t`` (> 0).

    Returns:
        The scalar mean loss.

    Examples:
        >>> z = torch.randn(8, 16)
        >>> bool(nt_xent(z, z + 0.01 * torch.randn(8, 16), 0.5) < nt_xent(z, torch.randn(8, 16)))
        True
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"nt_xent needs two (N, D) batches of equal shape, got {z1.shape}, {z2.shape}"
        )
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    # an anchor is never its own negative: its self-similarity leaves the softmax
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, positives)
