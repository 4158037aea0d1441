"""Join the process group of a staged run: one process per stage, started by ``torchrun``
(``bbp launch`` runs ``python -m beyond_backprop.cli.worker`` in each) or by
``torch.multiprocessing.spawn`` in tests; ``run.start_run`` then trains this rank's stage.
"""

from __future__ import annotations

import datetime
import os

import torch.distributed as dist

from beyond_backprop.config import ExperimentConfig
from beyond_backprop.engines.channel import StageError
from beyond_backprop.engines.device import choose_backend, resolve_device, use_device


def init_process_group(
    config: ExperimentConfig, rank: int, world_size: int, init_method: str = "env://"
) -> str:
    """Join the process group with the config's short timeout; returns the backend: nccl when
    this rank has a GPU (``cuda:LOCAL_RANK``) and nccl is built in, else gloo
    (``engine.backend`` can ask for one; reported in meta.json)."""
    device = resolve_device(config.engine.device, local_rank())
    use_device(device)
    backend = choose_backend(config.engine.backend, device)
    timeout = datetime.timedelta(seconds=config.engine.timeout_s)
    try:
        dist.init_process_group(
            backend, init_method=init_method, rank=rank, world_size=world_size, timeout=timeout
        )
    except RuntimeError as error:  # a peer that never joins: the rendezvous times out
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise StageError(
            f"stage {rank} (rank {rank}) could not join the {world_size} stages: {reason}"
        ) from error
    return backend


def local_rank() -> int | None:
    """This process's rank on its machine (torchrun's ``LOCAL_RANK``; None outside torchrun)."""
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value is not None else None
