"""Plugins: modules of your own that register rules, architectures, datasets or schedules with
the library's decorators (``register_rule``, ``register_architecture``, ``register_dataset``,
``register_schedule``), imported before a command reads its config.

Two ways in: ``--plugin MODULE`` on every ``bbp`` command (a dotted module name or a ``.py``
file), and the entry-point group ``beyond_backprop.plugins`` of an installed package
(``[project.entry-points."beyond_backprop.plugins"] mine = "mypkg.bbp"``). The loaded names are
kept in the environment variable ``BBP_PLUGINS`` so that the processes a command starts (each
stage of ``bbp launch``, each run of ``bbp compare``) load the same ones, and in the run
directory (``RunDir.plugins``) so that ``--resume`` loads them again.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from beyond_backprop.errors import ConfigError
from beyond_backprop.tracking.atomic import atomic_write_json
from beyond_backprop.tracking.run_dir import RunDir

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "beyond_backprop.plugins"
ENV_VAR = "BBP_PLUGINS"
_loaded: set[str] = set()


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Import ``modules``, those named in ``BBP_PLUGINS`` and every installed entry point of
    ``beyond_backprop.plugins`` (each once); returns the names imported by this call.

    Raises:
        ConfigError: a module that cannot be imported, with the reason, in one line.
    """
    named = [m for m in os.environ.get(ENV_VAR, "").split(os.pathsep) if m]
    given = [str(Path(m).resolve()) if m.endswith(".py") else m for m in modules]
    wanted = list(dict.fromkeys([*named, *given]))
    done = []
    for name in wanted:
        if name not in _loaded:
            _import(name)
            _loaded.add(name)
            done.append(name)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry point {entry.name}"
        if key not in _loaded:
            try:
                entry.load()
            except Exception as error:
                raise ConfigError([f"plugin {entry.name!r} ({entry.value}): {error}"]) from None
            _loaded.add(key)
            done.append(entry.value)
    if wanted:  # child processes (stages, compared runs) load the same plugins
        os.environ[ENV_VAR] = os.pathsep.join(wanted)
    for name in done:
        log.info("plugin loaded: %s", name)
    return done


def requested_plugins() -> list[str]:
    """The plugin modules loaded so far (by ``--plugin`` or ``BBP_PLUGINS``; entry points are
    not named: an installed package loads by itself)."""
    return [m for m in os.environ.get(ENV_VAR, "").split(os.pathsep) if m]


def save_run_plugins(run_dir: RunDir) -> None:
    """Write the loaded plugin modules into a new run directory (nothing when there are none)."""
    if modules := requested_plugins():
        atomic_write_json(run_dir.plugins, {"plugins": modules})


def load_run_plugins(run_dir: RunDir) -> list[str]:
    """Load the plugin modules a run was started with (``save_run_plugins``), so that its
    ``config.yaml`` can name what they register; returns the names imported by this call."""
    if not run_dir.plugins.is_file():
        return []
    return load_plugins(json.loads(run_dir.plugins.read_text())["plugins"])


def _import(name: str) -> None:
    try:
        if name.endswith(".py"):
            path = Path(name).resolve()
            spec = importlib.util.spec_from_file_location(f"_bbp_plugin_{path.stem}", path)
            if spec is None or spec.loader is None or not path.is_file():
                raise ImportError(f"no such file: {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(name)
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(
            [f"--plugin {name}: cannot import it ({type(error).__name__}: {error}); give a "
             "module on the Python path (mypkg.plugin) or a .py file"]
        ) from None  # fmt: skip
