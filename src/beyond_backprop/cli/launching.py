"""The torchrun command line that ``bbp launch`` runs."""

from __future__ import annotations

import sys
from pathlib import Path

from beyond_backprop.config import load_config
from beyond_backprop.errors import ConfigError
from beyond_backprop.tracking.run_dir import RunDir


def torchrun_command(
    nproc: int,
    config: Path | None,
    overrides: list[str],
    resume: Path | None,
    nnodes: int,
    rdzv_endpoint: str | None,
    rdzv_backend: str,
    rdzv_id: str,
    stop_after: int | None,
) -> list[str]:
    """Check the config for a staged run of ``nproc * nnodes`` stages (all problems at once)
    and return the torchrun command; a one-process config gets ``engine.stages`` set."""
    if nproc < 1 or nnodes < 1:
        raise ConfigError([f"--nproc {nproc} / --nnodes {nnodes}: both must be >= 1"])
    world = nproc * nnodes
    worker = ["-m", "beyond_backprop.cli.worker"]
    if resume is not None:
        if config is not None or overrides:
            raise ConfigError(
                ["--resume continues a run with its own config.yaml: drop --config/--set"]
            )
        load_config(RunDir(resume).config)  # a clear error for a missing or bad run dir
        worker += ["--resume", str(resume)]
    else:
        if config is None:
            raise ConfigError(["bbp launch needs --config FILE (or --resume RUN_DIR)"])
        cfg = load_config(config, overrides)
        extra = []
        if cfg.engine.stages == 1:
            extra = [f"engine.stages={world}"]
        elif cfg.engine.stages != world:
            raise ConfigError(
                [f"engine.stages is {cfg.engine.stages} but --nproc {nproc} x --nnodes {nnodes} "
                 f"starts {world} processes: make them equal"]
            )  # fmt: skip
        sets = [*overrides, *extra]
        load_config(config, sets)  # the switched config must be valid too (e.g. boundaries)
        worker += ["--config", str(config), *(a for s in sets for a in ("--set", s))]
    if stop_after is not None:
        worker += ["--stop-after", str(stop_after)]
    if nnodes == 1 and rdzv_endpoint is None:
        # Loopback, not the host's name: where that name resolves to an address the sandbox
        # cannot reach, ``--standalone`` workers fail to join the agent's store.
        rendezvous = ["--nnodes=1", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0",
                      f"--rdzv-id={rdzv_id}", "--local-addr=127.0.0.1"]  # fmt: skip
    else:
        if rdzv_endpoint is None:
            raise ConfigError(
                ["--nnodes > 1 needs --rdzv-endpoint HOST:PORT (a machine all reach)"]
            )
        rendezvous = [f"--nnodes={nnodes}", f"--rdzv-backend={rdzv_backend}",
                      f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}"]  # fmt: skip
    return [sys.executable, "-m", "torch.distributed.run", *rendezvous,
            f"--nproc-per-node={nproc}", *worker]  # fmt: skip
