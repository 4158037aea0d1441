"""``bbp eval``: evaluations of a finished run (one-process or staged): ``--probe RUN``, offline
linear probes on the frozen encoder; ``--finetune RUN``, SimCLRv2's semi-supervised fine-tuning,
supervised baseline and self-distillation (``eval/semi_supervised.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from beyond_backprop.cli.common import console
from beyond_backprop.errors import ConfigError


def eval_(
    probe: Annotated[
        Path | None, typer.Option("--probe", help="A run directory: linear probes per block")
    ] = None,
    finetune: Annotated[
        Path | None,
        typer.Option("--finetune", help="A run directory: fine-tune on a fraction of the labels"),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs of probe training (10) / fine-tuning (30)")
    ] = None,
    pool: Annotated[int, typer.Option(help="Pool image features to at most N x N cells")] = 4,
    lr: Annotated[
        float | None, typer.Option(help="Adam learning rate: probes (1e-2) / fine-tuning (1e-3)")
    ] = None,
    train_limit: Annotated[
        int | None, typer.Option(help="Train the probes on the first N training examples")
    ] = None,
    label_fraction: Annotated[
        float | None, typer.Option(help="Fine-tuning: labeled fraction of the training split")
    ] = None,
    finetune_from: Annotated[
        int, typer.Option(help="Head layers kept under the classifier (0: SimCLR's practice)")
    ] = 1,
    label_seed: Annotated[int, typer.Option(help="Seed of the labeled subset")] = 0,
    batch_size: Annotated[int, typer.Option(help="Fine-tuning batch size")] = 64,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Also train the same network from scratch")
    ] = False,
    distill: Annotated[
        bool, typer.Option("--distill", help="Also distill the fine-tuned network")
    ] = False,
    distill_epochs: Annotated[int, typer.Option(help="Distillation epochs (unlabeled)")] = 5,
    temperature: Annotated[float, typer.Option(help="Distillation temperature")] = 1.0,
    alpha: Annotated[
        float, typer.Option(help="Distillation weight; 1 - alpha weighs the labeled loss")
    ] = 1.0,
) -> None:
    """Evaluate a finished run. ``--probe RUN`` fits a linear probe on each encoder block's
    frozen features (RUN/probe.json). ``--finetune RUN --label-fraction F`` fine-tunes the
    encoder and the first ``--finetune-from`` head layers on a class-balanced fraction F of the
    training labels, with ``--baseline`` the same network from scratch and with ``--distill``
    a student distilled from it (RUN/finetune_f<F>_from<N>.json)."""
    if (probe is None) == (finetune is None):
        raise ConfigError(["bbp eval needs one of --probe RUN_DIR or --finetune RUN_DIR"])
    table = Table(show_header=True, header_style="bold")
    if probe is not None:
        from beyond_backprop.eval.probe import PROBE_FILE, probe_run

        result = probe_run(
            probe, epochs=epochs or 10, pool=pool, lr=lr or 1e-2, train_limit=train_limit
        )
        table.add_column("block")
        table.add_column(f"probe accuracy ({result['split']})")
        for block, accuracy in result["accuracy"].items():
            table.add_row(block, f"{100 * accuracy:.2f}%")
        written = Path(probe) / PROBE_FILE
    else:
        from beyond_backprop.eval.semi_supervised import (
            SemiSupervisedConfig,
            finetune_run,
            result_file,
        )

        if label_fraction is None:
            raise ConfigError(["--finetune needs --label-fraction F (e.g. 0.01 or 0.1)"])
        cfg = SemiSupervisedConfig(
            label_fraction, finetune_from, label_seed, epochs or 30, lr or 1e-3, batch_size,
            baseline, distill, distill_epochs, temperature, alpha,
        )  # fmt: skip
        assert finetune is not None
        result = finetune_run(finetune, cfg)
        table.add_column(f"{result['labels']} labels, from head layer {finetune_from}")
        table.add_column(f"accuracy ({result['split']})")
        for name, accuracy in result["accuracy"].items():
            table.add_row(name, f"{100 * accuracy:.2f}%")
        written = Path(finetune) / result_file(cfg)
    console.print(table)
    console.print(f"written to {written}", highlight=False)
