"""The torchrun command line that ``bbp launch`` runs, checked before torchrun starts: every
problem the launcher can find itself (the config, the schedule for the rule, the stages for the
stack) is one ``error:`` line and exit 2 here, not a failure of every rank."""

from __future__ import annotations

import sys
from pathlib import Path

from beyond_backprop.config import ExperimentConfig, load_config
from beyond_backprop.errors import ConfigError
from beyond_backprop.run.plugins import load_run_plugins
from beyond_backprop.tracking.run_dir import RunDir


def check_stop_after(stop_after: int | None) -> None:
    """``--stop-after`` is a global step, counted from 1."""
    if stop_after is not None and stop_after < 1:
        raise ConfigError([f"--stop-after {stop_after} is invalid: must be a step >= 1"])


def check_staged(config: ExperimentConfig) -> None:
    """What each rank would find before training: the schedule serves the rule's wiring and the
    stack splits into ``engine.stages`` stages (at ``engine.boundaries`` when given). Builds
    the experiment as a rank does (the data included: the stack's shapes depend on it)."""
    from beyond_backprop.engines.schedules import check_experiment_schedule
    from beyond_backprop.experiment import build_experiment

    experiment = build_experiment(config)
    check_experiment_schedule(experiment)
    blocks, stages = len(experiment.stack), config.engine.stages
    boundaries = config.engine.boundaries
    if boundaries is not None:
        try:
            experiment.stack.partition(boundaries)
        except ValueError:
            raise ConfigError(
                [f"engine.boundaries: {list(boundaries)} is invalid: the first block of each "
                 f"stage after the first, increasing, within 1..{blocks - 1} ({config.model.arch} "
                 f"has {blocks} blocks)"]
            ) from None  # fmt: skip
    elif stages > blocks:
        raise ConfigError(
            [f"engine.stages: {stages} stages for {blocks} blocks ({config.model.arch}): at most "
             f"one stage per block, so --nproc x --nnodes must be <= {blocks}"]
        )  # fmt: skip


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
        load_run_plugins(RunDir.open(resume))  # the stages inherit them (BBP_PLUGINS)
        stages = load_config(RunDir.open(resume).config).engine.stages
        if stages != world:
            raise ConfigError(
                [f"--resume {resume}: the run has {stages} stages but --nproc {nproc} x "
                 f"--nnodes {nnodes} starts {world} processes: resume with --nproc {stages}"]
            )  # fmt: skip
        worker += ["--resume", str(resume)]
    else:
        if config is None:
            raise ConfigError(["bbp launch needs --config FILE (or --resume RUN_DIR)"])
        # the stages alone first: boundaries are checked against the stages --nproc sets
        cfg = load_config(config, [*overrides, "engine.boundaries=null"])
        extra = []
        if cfg.engine.stages == 1:
            extra = [f"engine.stages={world}"]
        elif cfg.engine.stages != world:
            raise ConfigError(
                [f"engine.stages is {cfg.engine.stages} but --nproc {nproc} x --nnodes {nnodes} "
                 f"starts {world} processes: make them equal"]
            )  # fmt: skip
        sets = [*overrides, *extra]
        check_staged(load_config(config, sets))  # the switched config must be valid too
        worker += ["--config", str(config), *(a for s in sets for a in ("--set", s))]
    check_stop_after(stop_after)
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
