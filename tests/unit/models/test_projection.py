"""The projection head: depth 2 is SimCLR's head unchanged, depth 3 SimCLRv2's; its trunk keeps
the head's own first layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from beyond_backprop.models.projection import ProjectionHead


def test_depth_two_draws_the_v1_head_exactly() -> None:
    """Existing presets and checkpoints keep their parameters and state-dict keys."""
    torch.manual_seed(3)
    head = ProjectionHead((6, 4, 4), 8, 5)
    torch.manual_seed(3)
    v1 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 8), nn.ReLU(),
                       nn.Linear(8, 5))  # fmt: skip
    assert head.net.state_dict().keys() == v1.state_dict().keys()
    for a, b in zip(head.net.state_dict().values(), v1.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_depth_counts_linear_layers_and_trunks_share_them(depth: int) -> None:
    head = ProjectionHead((12,), 7, 3, depth=depth)
    linears = [m for m in head.net if isinstance(m, nn.Linear)]
    assert len(linears) == depth
    h = torch.randn(5, 12)
    assert head(h).shape == (5, 3)
    for keep in range(depth):
        trunk = head.trunk(keep)
        assert trunk(h).shape == (5, head.trunk_width(keep))
        kept = [m for m in trunk if isinstance(m, nn.Linear)]
        assert len(kept) == keep
        assert all(a is b for a, b in zip(kept, linears, strict=False))  # shared, not copies
    with pytest.raises(ValueError, match=f"keep 0 to {depth - 1}"):
        head.trunk(depth)


def test_trunk_one_of_the_v2_head_is_its_first_layer_and_relu() -> None:
    head = ProjectionHead((4, 3, 3), 6, 2, depth=3)
    h = torch.randn(2, 4, 3, 3)
    first = head.net[2]
    assert isinstance(first, nn.Linear)
    torch.testing.assert_close(head.trunk(1)(h), torch.relu(first(h.mean(dim=(2, 3)))))
    torch.testing.assert_close(head.trunk(0)(h), h.mean(dim=(2, 3)))


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth >= 1"):
        ProjectionHead((4,), 3, 2, depth=0)
