"""SimCLRv2's semi-supervised steps on a pretrained encoder: fine-tuning on a few labels, from
a middle layer of the projection head, then self-distillation with the unlabeled examples.

Chen, Kornblith, Swersky, Norouzi, Hinton 2020 (arXiv 2006.10029), Sec. 2: after pretraining,
SimCLR throws the head g away and fine-tunes the encoder f with a new linear classifier;
SimCLRv2 keeps the head's first layer(s), ``f_task(x) = W_task relu(W_mlp f(x))``, and
fine-tunes the encoder and the kept layers. The fine-tuned network is then the fixed teacher of
a student of the same architecture trained on unlabeled examples to match its tempered label
distribution (``losses.distillation_loss``), optionally mixed with the labeled cross-entropy:
``(1 - alpha) CE(labeled) + alpha distill(unlabeled)``.

Every function here trains under a forked, seeded global generator: results are a function of
the seed, and the caller's generator is left as it was.

Deviations: Adam with a constant learning rate instead of LARS/momentum SGD; no augmentation
while fine-tuning or distilling (the supervised baseline sees none either).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.data import TensorSplit, iter_batches
from beyond_backprop.losses.distill import distillation_loss
from beyond_backprop.models.projection import ProjectionHead


class FineTuneNet(nn.Module):
    """``classifier(trunk(encoder(x)))``: the encoder blocks, the kept head layers (the
    pooling alone when none is kept) and a linear classifier."""

    def __init__(self, encoder: Iterable[nn.Module], trunk: nn.Module, classifier: nn.Linear):
        super().__init__()
        self.encoder = nn.Sequential(*encoder)
        self.trunk = trunk
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        """Class logits."""
        return self.classifier(self.trunk(self.encoder(x)))


def finetune_network(
    encoder: Iterable[nn.Module], head: ProjectionHead, keep: int, num_classes: int, seed: int
) -> FineTuneNet:
    """The network to fine-tune: ``encoder`` and the first ``keep`` layers of ``head`` (the
    modules themselves, not copies: fine-tuning trains them in place; the head's layers
    above ``keep`` are not part of it) and a new linear classifier initialised from ``seed``."""
    trunk = head.trunk(keep)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        classifier = nn.Linear(head.trunk_width(keep), num_classes)
    return FineTuneNet(encoder, trunk, classifier)


def reinitialized(net: nn.Module, seed: int) -> nn.Module:
    """A copy of ``net`` with every parameter and BatchNorm statistic drawn afresh from
    ``seed``: the same architecture, nothing learned (the supervised baseline, the student)."""
    fresh = copy.deepcopy(net)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return fresh


def train_supervised(
    net: nn.Module, labeled: TensorSplit, *, epochs: int, batch_size: int, lr: float, seed: int
) -> None:
    """Train every parameter of ``net`` with cross-entropy on ``labeled`` (Adam, shuffled)."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(epochs):
            # cpu: a batch order (indices into CPU features)
            for x, y in iter_batches(labeled, batch_size, torch.randperm(len(labeled))):
                optimizer.zero_grad()
                F.cross_entropy(net(x), y).backward()
                optimizer.step()


def distill(
    teacher: nn.Module,
    student: nn.Module,
    unlabeled: Tensor,
    labeled: TensorSplit | None = None,
    *,
    temperature: float = 1.0,
    alpha: float = 1.0,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> None:
    """Train ``student`` to match the fixed ``teacher`` on the ``unlabeled`` inputs: each step
    ``alpha * distill(student, teacher; temperature)`` on an unlabeled batch, plus, when
    ``alpha < 1``, ``(1 - alpha)`` times the cross-entropy on a batch of ``labeled`` (cycled)."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if alpha < 1 and labeled is None:
        raise ValueError(f"alpha {alpha} < 1 mixes in the labeled loss: give the labeled set")
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher.eval()
    student.train()
    # cpu: placeholder targets, never used
    pool = TensorSplit(unlabeled, torch.zeros(len(unlabeled), dtype=torch.long))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        labeled_batches = (
            _forever(labeled, batch_size) if alpha < 1 and labeled is not None else None
        )
        for _ in range(epochs):
            # cpu: a batch order (indices into CPU features)
            for x, _ in iter_batches(pool, batch_size, torch.randperm(len(pool))):
                with torch.no_grad():
                    target = teacher(x)
                loss = alpha * distillation_loss(student(x), target, temperature)
                if labeled_batches is not None:
                    xl, yl = next(labeled_batches)
                    loss = loss + (1 - alpha) * F.cross_entropy(student(xl), yl)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()


def _forever(split: TensorSplit, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Shuffled batches of ``split``, epoch after epoch (drawn from the global generator)."""
    while True:
        # cpu: a batch order (indices into CPU features)
        yield from iter_batches(split, batch_size, torch.randperm(len(split)))


def accuracy(net: nn.Module, split: TensorSplit, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``net`` (in eval mode) on ``split``."""
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in iter_batches(split, batch_size):
            correct += int((net(x).argmax(1) == y).sum())
    return correct / len(split)
