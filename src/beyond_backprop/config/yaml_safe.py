"""The YAML reader of config files and ``--set`` values: numbers as users write them, no
aliases, bounded nesting.

PyYAML implements YAML 1.1, where ``1e-3`` (no dot) and ``1E5`` are strings; YAML 1.2 and every
user read them as floats, so the loader adds the YAML 1.2 float pattern. Aliases (``*name``)
are refused: a few hundred bytes of nested aliases expand to gigabytes ("billion laughs"), and a
config never needs them. Nesting deeper than ``MAX_DEPTH`` is refused before it can exhaust
the recursion of PyYAML's composer.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent

MAX_DEPTH = 32
"""The deepest nesting of mappings and lists a config may have (configs use about 4)."""

# YAML 1.2 core schema floats, plus 1.1's ".inf"/".nan" spellings (refused later as non-finite).
_FLOAT = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)


class ConfigYAMLError(ValueError):
    """A config text that the loader refuses (alias, nesting); the message is one line."""

    def __init__(self, message: str, line: int | None) -> None:
        self.line = line
        super().__init__(message)


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` with YAML 1.2 floats, no aliases and a nesting limit."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, AliasEvent):
            raise ConfigYAMLError(
                f"YAML aliases (*{event.anchor}) are not allowed in configs: write the value out",
                line,
            )
        nested = isinstance(event, CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise ConfigYAMLError(f"nested deeper than {MAX_DEPTH} levels", line)
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1


# A float resolver for the first characters a float can start with; resolvers are checked in
# order, so ours goes first for each, ahead of YAML 1.1's int and float patterns. The loader
# gets its own copy of the table: yaml.safe_load elsewhere keeps YAML 1.1.
_Loader.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "-+.0123456789":
    _Loader.yaml_implicit_resolvers[_first] = [
        ("tag:yaml.org,2002:float", _FLOAT),
        *_Loader.yaml_implicit_resolvers.get(_first, []),
    ]


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).replace("_", "")
    lowered = text.lower()
    if lowered.lstrip("+-") == ".inf":
        return float("-inf") if lowered.startswith("-") else float("inf")
    if lowered == ".nan":
        return float("nan")
    return float(text)


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def safe_load(text: str) -> Any:
    """The YAML document in ``text``.

    Raises:
        yaml.YAMLError: malformed YAML.
        ConfigYAMLError: an alias, or nesting deeper than ``MAX_DEPTH``.

    Examples:
        >>> safe_load("lr: 1e-3\\nn: 1E5\\nm: .5")
        {'lr': 0.001, 'n': 100000.0, 'm': 0.5}
    """
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: builds plain data only
