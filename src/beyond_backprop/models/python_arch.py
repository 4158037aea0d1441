"""``model.arch: python:MODULE:FUNCTION``: a network built by your own function, named by its
import path so that a run's ``config.yaml`` rebuilds it (``--resume``, ``bbp eval``,
``bbp compare``).

``MODULE`` is a dotted module name (``mypkg.models``) or a ``.py`` file
(``examples/own_stack.py``). The function takes ``(input_shape, num_classes)`` and returns a
``BlockStack``; its further parameters with defaults become the ``model:`` options
(``--set model.width=64``), checked against their annotations like any architecture's.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from beyond_backprop.models.stack import BlockStack

PREFIX = "python:"
_OPTION_TYPES = (int, float, str, bool)


def import_path(factory: Callable[..., Any]) -> str:
    """The ``python:`` architecture name of ``factory`` (a script's function by its file)."""
    module = factory.__module__
    if module == "__main__":
        module = str(Path(sys.modules["__main__"].__file__ or "").resolve())
    return f"{PREFIX}{module}:{factory.__qualname__}"


def resolve(target: str) -> Callable[..., Any]:
    """The function that ``MODULE:FUNCTION`` names; ``ImportError`` says what is missing."""
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise ImportError(f"expected python:MODULE:FUNCTION, got {PREFIX}{target}")
    module = _load_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ImportError(f"{module_name} has no attribute {attr!r}")
    if not callable(obj):
        raise ImportError(f"{target} is not a function")
    return typing.cast(Callable[..., Any], obj)


def _load_module(name: str) -> Any:
    if not name.endswith(".py"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            # as ``python -m`` does: a module beside the current directory (the ``bbp``
            # console script does not put it on the path)
            if "" in sys.path or str(Path.cwd()) in sys.path:
                raise
            sys.path.append(str(Path.cwd()))
            return importlib.import_module(name)
    path = Path(name).resolve()
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file and Path(main_file).resolve() == path:
        return sys.modules["__main__"]  # the running script itself: do not execute it a second time
    key = f"_bbp_arch_{abs(hash(str(path)))}"
    if key in sys.modules:
        return sys.modules[key]
    if not path.is_file():
        raise ImportError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(key, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


@cache
def python_architecture(name: str) -> type:
    """The config class of architecture ``python:...`` (one per name, fields from the
    function's optional parameters)."""
    factory = resolve(name[len(PREFIX) :])
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # annotations that do not resolve: options are then unchecked
        hints = {}
    fields: list[tuple[str, Any, Any]] = []
    for i, param in enumerate(inspect.signature(factory).parameters.values()):
        if i < 2 or param.default is inspect.Parameter.empty:
            continue  # (input_shape, num_classes) come from the data
        tp = hints.get(param.name, Any)
        tp = tp if tp in _OPTION_TYPES else Any
        fields.append((param.name, tp, dataclasses.field(default=param.default)))

    def build(self: Any, input_shape: tuple[int, ...], num_classes: int) -> BlockStack:
        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        stack = factory(input_shape, num_classes, **options)
        if not isinstance(stack, BlockStack):
            raise TypeError(f"{name} returned {type(stack).__name__}, not a BlockStack")
        return stack

    def debug(cls: type) -> Any:
        return cls()

    namespace = {"build": build, "debug": classmethod(debug), "arch": name,
                 "__doc__": f"Your own network: {name}."}  # fmt: skip
    return dataclasses.make_dataclass("PythonArchitecture", fields, namespace=namespace,
                                      frozen=True)  # fmt: skip
