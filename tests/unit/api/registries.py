"""A fixture body that undoes what a test registers (rules, architectures, datasets,
schedules, plugin modules), so that tests which iterate the registries never see a test's
own entries."""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Iterator

from beyond_backprop.data.registry import DATASETS
from beyond_backprop.engines.schedules import registry as schedules
from beyond_backprop.models import ARCHITECTURES
from beyond_backprop.rules import RULES
from beyond_backprop.run import plugins


def isolated_registries() -> Iterator[None]:
    """Snapshot the registries, the loaded plugins and the imported modules; restore them."""
    saved = [(r, dict(r._entries)) for r in (RULES, ARCHITECTURES, DATASETS)]
    saved_schedules = dict(schedules._REGISTERED)
    loaded, modules = set(plugins._loaded), set(sys.modules)
    try:
        yield
    finally:
        for registry, entries in saved:
            registry._entries.clear()
            registry._entries.update(entries)
        schedules._REGISTERED.clear()
        schedules._REGISTERED.update(saved_schedules)
        plugins._loaded.clear()
        plugins._loaded.update(loaded)
        for name in set(sys.modules) - modules:  # re-imported (and re-registered) next time
            if _user_module(name):
                del sys.modules[name]
                parent, _, child = name.rpartition(".")
                if parent in sys.modules:  # else ``from parent import child`` finds it again
                    vars(sys.modules[parent]).pop(child, None)


def _user_module(name: str) -> bool:
    """A module of the examples or of a test's own files (never the library, the standard
    library or an installed package, whose C extensions cannot be imported twice)."""
    if name == "examples" or name.startswith("examples."):
        return True
    file = getattr(sys.modules[name], "__file__", None)
    if not file or name.startswith("beyond_backprop"):
        return False
    installed = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return not any(file.startswith(root) for root in installed)
