"""``--plugin MODULE`` on every ``bbp`` command: the modules are imported before the command
runs (``run/plugins.py``), so the rules, architectures, datasets and schedules they register
can be named in configs and suites."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
import typer.core

from beyond_backprop.run.plugins import load_plugins

F = TypeVar("F", bound=Callable[..., Any])

PLUGIN_HELP = (
    "Import this module first (a dotted name or a .py file) so that the rules, architectures, "
    "datasets or schedules it registers can be used; repeatable"
)
_PARAMETER = inspect.Parameter(
    "plugin",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        list[str] | None, typer.Option("--plugin", metavar="MODULE", help=PLUGIN_HELP)
    ],
)


def with_plugins(command: F) -> F:
    """``command`` with a ``--plugin`` option that loads the plugins, then runs it; its help
    text (the docstring) loses the reST double backquotes, which a terminal shows raw."""

    @functools.wraps(command)
    def wrapper(*args: Any, plugin: list[str] | None = None, **kwargs: Any) -> Any:
        load_plugins(plugin or [])
        return command(*args, **kwargs)

    signature = inspect.signature(command, eval_str=True)
    signature = signature.replace(parameters=[*signature.parameters.values(), _PARAMETER])
    setattr(wrapper, "__signature__", signature)  # noqa: B010  (read by typer)
    del wrapper.__wrapped__  # typer must read the signature above, not the original's
    wrapper.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    wrapper.__doc__ = (command.__doc__ or "").replace("``", "")
    return typing.cast(F, wrapper)


def hide_flag_types() -> None:
    """Show no ``<bool>`` type after on/off flags (``--force``, ``--help``) in help screens."""
    option = typer.core.TyperOption
    shown = option.display_type_rich

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    option.display_type_rich = display_type_rich  # type: ignore[method-assign]
