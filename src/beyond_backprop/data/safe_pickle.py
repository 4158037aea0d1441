"""A restricted unpickler for dataset files: only an explicit list of globals may be loaded."""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from beyond_backprop.errors import DataError

Global = tuple[str, str]

NUMPY_ARRAY_GLOBALS: frozenset[Global] = frozenset(
    {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
)
"""What a pickled numpy array needs (``numpy.core`` and ``numpy._core`` both match)."""

_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


def _canonical(module: str) -> str:
    """``numpy._core.x`` (written by numpy 2) spelled as ``numpy.core.x``."""
    if module == "numpy._core" or module.startswith("numpy._core."):
        return "numpy.core" + module[len("numpy._core") :]
    return module


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` loads only the globals in ``allowed``; anything else
    raises ``pickle.UnpicklingError``. ``numpy.core.*`` is imported as ``numpy._core.*`` on
    numpy 2."""

    def __init__(
        self, file: io.BytesIO, allowed: frozenset[Global], *, encoding: str = "latin1"
    ) -> None:
        super().__init__(file, encoding=encoding)
        self.allowed = allowed

    def find_class(self, module: str, name: str, /) -> Any:
        canonical = _canonical(module)
        if (canonical, name) not in self.allowed:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        if canonical == "numpy.core" or canonical.startswith("numpy.core."):
            module = _NUMPY_CORE + canonical[len("numpy.core") :]
        return super().find_class(module, name)


def restricted_loads(
    data: bytes, allowed: frozenset[Global], *, source: str, encoding: str = "latin1"
) -> object:
    """Unpickle ``data`` with ``RestrictedUnpickler``; every failure is a ``DataError`` naming
    ``source`` (the file the bytes came from)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), allowed, encoding=encoding).load()
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"{source} is not a valid dataset pickle ({exc}); delete it or replace it with "
            "a genuine copy"
        ) from exc
    except Exception as exc:
        raise DataError(
            f"{source} cannot be unpickled ({type(exc).__name__}: {exc}); the file is corrupted: "
            "delete it or replace it with a genuine copy"
        ) from exc
