"""Capture and restore random number generator state in a ``weights_only``-loadable form.

``torch.load(weights_only=True)`` refuses numpy arrays and arbitrary objects, so every state is
kept as tensors, dicts, lists and Python scalars: torch's as uint8 tensors, Python's
``random.getstate()`` as a dict of ints, numpy's as its ``bit_generator.state`` dict with arrays
turned into lists (numpy accepts lists back).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

from beyond_backprop.errors import CheckpointError

logger = logging.getLogger(__name__)

RngState = dict[str, Any]


def _to_builtin(obj: Any) -> Any:
    """Arrays -> lists and numpy scalars -> Python scalars, recursively through dicts."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {key: _to_builtin(value) for key, value in obj.items()}
    return obj


def capture_numpy_generator(generator: np.random.Generator) -> dict[str, Any]:
    """The state of a numpy ``Generator`` as a dict of Python scalars and lists."""
    return dict(_to_builtin(generator.bit_generator.state))


def restore_numpy_generator(generator: np.random.Generator, state: dict[str, Any]) -> None:
    """Put ``generator`` back into ``state`` (from :func:`capture_numpy_generator`)."""
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        kind = type(generator.bit_generator).__name__
        raise CheckpointError(
            f"saved numpy generator state ({state.get('bit_generator')!r}) does not fit this "
            f"{kind} generator: {exc}"
        ) from exc


def capture_rng_state() -> RngState:
    """The global RNG state of this process: torch CPU, Python ``random``, numpy's legacy global,
    and CUDA (one tensor per device) when CUDA is in use.

    Examples:
        >>> state = capture_rng_state()
        >>> a = torch.rand(2)
        >>> restore_rng_state(state)
        >>> bool((torch.rand(2) == a).all())
        True
    """
    version, internal, gauss_next = random.getstate()
    state: RngState = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": _to_builtin(np.random.get_state(legacy=False)),
    }
    # Only once CUDA is initialised: capturing would otherwise initialise it (slow, and it
    # takes GPU memory) in runs that never use the GPU.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _require(state: RngState, key: str) -> Any:
    if key not in state:
        raise CheckpointError(f"saved RNG state lacks {key!r} (has {sorted(state)})")
    return state[key]


def restore_rng_state(state: RngState) -> None:
    """Restore the global RNG state captured by :func:`capture_rng_state`."""
    # set_rng_state needs a CPU ByteTensor; a checkpoint loaded with map_location="cuda" is not.
    torch.set_rng_state(_require(state, "torch").cpu())
    python = _require(state, "python")
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    np.random.set_state(_require(state, "numpy"))
    cuda_states = state.get("cuda")
    if cuda_states is None:
        return
    if not torch.cuda.is_available():
        logger.warning("saved CUDA RNG state is ignored: CUDA is not available")
        return
    count = torch.cuda.device_count()
    if len(cuda_states) != count:
        logger.warning(
            "saved CUDA RNG state covers %d devices, this process sees %d; restoring %d",
            len(cuda_states),
            count,
            min(count, len(cuda_states)),
        )
    for device, device_state in enumerate(cuda_states[:count]):
        torch.cuda.set_rng_state(device_state.cpu(), device)
