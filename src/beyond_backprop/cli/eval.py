"""``bbp eval --probe RUN``: offline linear probes on the frozen encoder of a finished run."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from beyond_backprop.cli.app import app, console
from beyond_backprop.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

PROBE_FILE = "probe.json"


def probe_run(
    run_dir: str | Path,
    *,
    epochs: int = 10,
    pool: int = 4,
    lr: float = 1e-2,
    train_limit: int | None = None,
) -> dict[str, Any]:
    """Fit a linear probe per encoder block on the frozen features of the run's latest
    checkpoint (training split, or its first ``train_limit`` examples), score it on the run's
    evaluation split, and write ``RUN/probe.json``; returns what it wrote."""
    import torch

    from beyond_backprop.config import load_config
    from beyond_backprop.eval.probe import encoder_features, fit_probes
    from beyond_backprop.experiment import build_experiment
    from beyond_backprop.tracking.atomic import atomic_write_json
    from beyond_backprop.tracking.checkpoint import load_latest_checkpoint
    from beyond_backprop.tracking.run_dir import open_run_dir

    path = open_run_dir(run_dir)
    config = load_config(path / "config.yaml")
    loaded = load_latest_checkpoint(path)
    if loaded is None:
        raise CheckpointError(f"{path} has no checkpoint to probe (checkpoints/latest)")
    step, state = loaded
    data_cfg = dataclasses.replace(config.data, train_limit=train_limit or config.data.train_limit)
    experiment = build_experiment(dataclasses.replace(config, data=data_cfg))
    experiment.stack.load_state_dict(state["model"])
    experiment.stack.eval()  # frozen features: BatchNorm uses its running statistics
    rule, stack = experiment.rule, experiment.stack
    accuracies = fit_probes(
        lambda x: encoder_features(rule, stack, x),
        experiment.data.train,
        experiment.data.test,
        pool=pool,
        epochs=epochs,
        lr=lr,
        seed=config.seed,
    )
    result = {
        "step": step,
        "split": experiment.data.eval_split,
        "train_examples": len(experiment.data.train),
        "epochs": epochs,
        "pool": pool,
        "lr": lr,
        "threads": torch.get_num_threads(),
        "accuracy": {str(k): v for k, v in accuracies.items()},
    }
    atomic_write_json(path / PROBE_FILE, result)
    return result


@app.command("eval")
def eval_(
    probe: Annotated[
        Path | None, typer.Option("--probe", help="A run directory: linear probes per block")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Epochs of probe training")] = 10,
    pool: Annotated[int, typer.Option(help="Pool image features to at most N x N cells")] = 4,
    lr: Annotated[float, typer.Option(help="Adam learning rate of the probes")] = 1e-2,
    train_limit: Annotated[
        int | None, typer.Option(help="Train the probes on the first N training examples")
    ] = None,
) -> None:
    """Evaluate a finished run: ``--probe RUN`` fits a linear probe on each encoder block's
    frozen features and prints its test accuracy (also written to RUN/probe.json)."""
    if probe is None:
        raise ConfigError(["bbp eval needs --probe RUN_DIR (a run directory under log.root)"])
    result = probe_run(probe, epochs=epochs, pool=pool, lr=lr, train_limit=train_limit)
    table = Table(show_header=True, header_style="bold")
    table.add_column("block")
    table.add_column(f"probe accuracy ({result['split']})")
    for block, accuracy in result["accuracy"].items():
        table.add_row(block, f"{100 * accuracy:.2f}%")
    console.print(table)
    console.print(f"written to {Path(probe) / PROBE_FILE}", highlight=False)
