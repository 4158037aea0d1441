"""The architecture registry: each entry is a config dataclass with a ``build`` method."""

from __future__ import annotations

from typing import Protocol

from beyond_backprop.models.stack import BlockStack
from beyond_backprop.registry import Registry


class ArchitectureConfig(Protocol):
    """What a registered architecture config provides."""

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> BlockStack:
        """The network for inputs of ``input_shape`` and ``num_classes`` outputs."""
        ...

    @classmethod
    def debug(cls) -> ArchitectureConfig:
        """A tiny size for tests."""
        ...


ARCHITECTURES: Registry[type[ArchitectureConfig]] = Registry("architecture")
register_architecture = ARCHITECTURES.register


def build_model(
    arch: str, options: ArchitectureConfig, input_shape: tuple[int, ...], num_classes: int
) -> BlockStack:
    """Build the registered architecture ``arch`` from its config."""
    ARCHITECTURES.get(arch)  # a clear error for an unknown name
    return options.build(input_shape, num_classes)
