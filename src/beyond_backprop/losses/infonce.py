"""InfoNCE (CPC) losses: the contrastive bound of van den Oord et al. and its patch-grid form."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def info_nce(predictions: Tensor, targets: Tensor, negatives: int | None = None) -> Tensor:
    """InfoNCE with in-batch negatives (van den Oord et al. 2018, arXiv 1807.03748, Eq. 4).

    The score of prediction ``i`` and target ``j`` is the dot product ``f_ij = t_j . p_i`` (a
    log-bilinear model once ``p = W c``); target ``i`` is the positive of prediction ``i`` and
    all other targets are its negatives: ``-log(exp f_ii / sum_j exp f_ij)``, averaged over i.
    With ``negatives = M``, each prediction is scored against its positive and ``M`` other
    targets drawn uniformly (with replacement, never the positive) from torch's global
    generator, which bounds the cost at ``N (M + 1)`` scores instead of ``N^2``.

    Args:
        predictions: ``(N, D)``, e.g. ``W_k c_t``.
        targets: ``(N, D)``, e.g. ``z_{t+k}``; row i is the positive of prediction i.
        negatives: how many negatives to draw per prediction; None: all other targets.

    Returns:
        The scalar mean loss.

    Examples:
        >>> t = torch.randn(6, 4)
        >>> bool(info_nce(10 * t, t) < info_nce(10 * t, t.flip(0)))
        True
    """
    if predictions.shape != targets.shape or predictions.dim() != 2:
        raise ValueError(
            f"info_nce needs two (N, D) batches of equal shape, got {predictions.shape}, "
            f"{targets.shape}"
        )
    n = len(predictions)
    if negatives is None:
        scores = predictions @ targets.T
        return F.cross_entropy(scores, torch.arange(n, device=scores.device))
    drawn = sample_negatives(n, negatives).to(targets.device)
    positive = (predictions * targets).sum(1, keepdim=True)
    negative = torch.einsum("nd,nmd->nm", predictions, targets[drawn])
    scores = torch.cat([positive, negative], dim=1)  # the positive is class 0
    return F.cross_entropy(scores, torch.zeros(n, dtype=torch.long, device=scores.device))


def sample_negatives(n: int, m: int) -> Tensor:
    """``(n, m)`` indices: for row i, ``m`` draws from ``{0 .. n-1} \\ {i}`` (global generator)."""
    if n < 2:
        raise ValueError("sampled InfoNCE needs at least two targets")
    # cpu: global-RNG draw (checkpointed); indices
    drawn = torch.randint(0, n - 1, (n, m))
    # cpu: indices; skip the positive
    return drawn + (drawn >= torch.arange(n).view(-1, 1)).long()


def grid_info_nce(
    z: Tensor, predictors: Sequence[nn.Module], negatives: int | None = None, skip: int = 0
) -> dict[str, Tensor]:
    """The CPC vision task on a grid of patch representations, one InfoNCE term per offset.

    Patch ``(r, c)`` predicts the patch ``k + skip`` rows below it, ``(r + k + skip, c)``, with
    predictor ``W_k = predictors[k - 1]``; ``skip = 1`` is Greedy InfoMax's code
    (``skip_step``: the adjacent row, which overlaps the context patch, is never a target)
    (Oord et al. Sec. 3.2; Löwe et al. 2019, arXiv 1905.11786, Eq. 2-3). The negatives of a
    prediction are all other targets at the same offset in the batch (other patches of the
    same image and of the other images), or ``negatives`` of them drawn at random (see
    ``info_nce``).

    Args:
        z: patch representations, shape ``(B, D, G_rows, G_cols)``.
        predictors: one module ``(., D) -> (., D)`` per offset ``k = 1 .. K``
            (``K + skip < G_rows``).
        negatives: negatives drawn per prediction; None: all other targets at that offset.
        skip: rows skipped between a context and its first target.

    Returns:
        ``{"infonce_k<k>": loss}`` for each offset.
    """
    rows = z.shape[2]
    if not len(predictors) > 0 or len(predictors) + skip >= rows or skip < 0:
        raise ValueError(
            f"{len(predictors)} offsets (skipping {skip} rows) do not fit a grid of {rows} rows"
        )
    terms = {}
    for k, predictor in enumerate(predictors, start=1):
        ahead = k + skip
        context = z[:, :, : rows - ahead].permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        target = z[:, :, ahead:].permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        terms[f"infonce_k{k}"] = info_nce(predictor(context), target, negatives)
    return terms
