"""Context Encoders' critic judges the hidden region only by default (the authors' adversary),
or the whole image with the prediction pasted into its context."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from beyond_backprop.rules.reconstruction import adversarial_terms


class _Recorder(nn.Module):
    """A critic that remembers what it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[Tensor] = []

    def forward(self, image: Tensor) -> Tensor:
        self.seen.append(image.detach().clone())
        return self.scale * image.flatten(1).mean(1)


@pytest.mark.parametrize("sees", ["region", "whole"])
def test_the_critic_sees_the_region_or_the_pasted_image(sees: str) -> None:
    target = torch.rand(2, 1, 6, 6) + 1.0
    prediction = -torch.rand(2, 1, 6, 6) - 1.0
    weights = torch.zeros(2, 1, 6, 6)
    weights[:, :, 2:4, 2:4] = 1.0
    critic = _Recorder()
    adversarial_terms(critic, prediction, target, weights, sees)  # type: ignore[arg-type]
    real, fake = critic.seen[0], critic.seen[1]
    hidden = weights > 0
    assert torch.equal(real[hidden], target[hidden]) and torch.equal(
        fake[hidden], prediction[hidden]
    )
    if sees == "region":
        assert not real[~hidden].any() and not fake[~hidden].any()
    else:
        assert torch.equal(real, target) and torch.equal(fake[~hidden], target[~hidden])


def test_the_region_is_the_default() -> None:
    import inspect

    from beyond_backprop.rules.inpaint import ContextEncoder

    assert ContextEncoder.Config().critic_sees == "region"
    assert inspect.signature(adversarial_terms).parameters["critic_sees"].default == "region"
