"""A generic name -> object registry, used for rules, architectures and datasets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from beyond_backprop.errors import UnknownNameError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its name and a one-line description."""

    name: str
    obj: T
    description: str


class Registry(Generic[T]):
    """Named objects of one kind (``kind`` is used in messages: "rule", "architecture").

    Examples:
        >>> shapes: Registry[int] = Registry("shape")
        >>> @shapes.register("square", "four equal sides")
        ... def square() -> int:
        ...     return 4
        >>> shapes.get("square")()
        4
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        """Decorator registering its target under ``name``; the first docstring line is the
        default description."""

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self._entries[name] = Entry(name, obj, description or (doc[0] if doc else ""))
            return obj

        return decorate

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name lists the valid ones."""
        try:
            return self._entries[name].obj
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        """The message for an unknown name: the valid names and a close match."""
        hint = did_you_mean(str(name), self._entries)
        return f"unknown {self.kind} {name!r}{hint}; valid: {', '.join(self.names())}"

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def list(self) -> list[Entry[T]]:
        """All entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
