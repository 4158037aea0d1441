"""The architecture registry: each entry is a config dataclass with a ``build`` method; a
``python:MODULE:FUNCTION`` name stands for your own function (``models/python_arch.py``)."""

from __future__ import annotations

from typing import Protocol

from beyond_backprop.errors import UnknownNameError
from beyond_backprop.models.python_arch import PREFIX, python_architecture
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


class ArchitectureRegistry(Registry[type[ArchitectureConfig]]):
    """The registered architectures, plus every importable ``python:MODULE:FUNCTION``."""

    def get(self, name: str) -> type[ArchitectureConfig]:
        """The config class of ``name``; a ``python:`` name is imported on first use."""
        if isinstance(name, str) and name.startswith(PREFIX):
            try:
                return python_architecture(name)
            except Exception as error:  # the user's module: any failure is a one-line error
                raise UnknownNameError(self.unknown_message(name)) from error
        return super().get(name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name.startswith(PREFIX):
            try:
                python_architecture(name)
            except Exception:
                return False
            return True
        return super().__contains__(name)

    def unknown_message(self, name: object) -> str:
        """For a ``python:`` name, why it cannot be imported; else the valid names."""
        if isinstance(name, str) and name.startswith(PREFIX):
            try:
                python_architecture(name)
            except Exception as error:
                return (
                    f"cannot use architecture {name!r}: {type(error).__name__}: {error} "
                    "(expected python:MODULE:FUNCTION, MODULE importable or a .py file)"
                )
        return super().unknown_message(name)


ARCHITECTURES = ArchitectureRegistry("architecture")
register_architecture = ARCHITECTURES.register


def build_model(
    arch: str, options: ArchitectureConfig, input_shape: tuple[int, ...], num_classes: int
) -> BlockStack:
    """Build the registered architecture ``arch`` from its config."""
    ARCHITECTURES.get(arch)  # a clear error for an unknown name
    return options.build(input_shape, num_classes)
