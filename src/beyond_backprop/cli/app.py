"""The ``bbp`` command line (also installed as ``beyond-backprop``)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from beyond_backprop.cli.common import StopFlag, console, errors, summary_line
from beyond_backprop.cli.compare import compare
from beyond_backprop.cli.eval import eval_
from beyond_backprop.cli.plot import plot
from beyond_backprop.cli.plugins import hide_flag_types, with_plugins
from beyond_backprop.cli.progress import TrainingProgress
from beyond_backprop.config import load_config
from beyond_backprop.errors import BeyondBackpropError, ConfigError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Train neural networks without end-to-end back-propagation.",
)

LISTS = ("rules", "archs", "datasets")
hide_flag_types()


@app.command()
@with_plugins
def train(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="A YAML preset, e.g. configs/mnist/backprop.yaml"),
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a value: --set optim.lr=0.05")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue a stopped run from its directory")
    ] = None,
    stop_after: Annotated[
        int | None, typer.Option(help="Stop (with a checkpoint) after this global step")
    ] = None,
) -> None:
    """Train one run with the LocalEngine and print its result."""
    from beyond_backprop.cli.launching import check_stop_after
    from beyond_backprop.run import resume_run, start_run
    from beyond_backprop.run.api import staged_only_warnings

    check_stop_after(stop_after)
    flag = StopFlag()
    signal.signal(signal.SIGTERM, flag.handle)
    signal.signal(signal.SIGINT, flag.handle)
    if resume is not None:
        if config is not None or overrides:
            raise ConfigError(
                ["--resume continues a run with its own config.yaml: drop --config/--set"]
            )
        with TrainingProgress(console) as progress:
            result = resume_run(resume, progress=progress, should_stop=flag, stop_after=stop_after)
    else:
        if config is None:
            raise ConfigError(
                ["bbp train needs --config FILE (or --resume RUN_DIR); presets are in configs/"]
            )
        cfg = load_config(config, overrides or [])
        if cfg.engine.staged:
            raise ConfigError(
                [f"engine.stages: {cfg.engine.stages} runs one process per stage: use "
                 f"bbp launch --nproc {cfg.engine.stages} --config {config}"]
            )  # fmt: skip
        console.print(
            f"training {cfg.rule.name} on {cfg.data.name} ({cfg.model.arch}), run name {cfg.name!r}"
        )
        for line in staged_only_warnings(cfg):
            console.print(f"warning: {line}", highlight=False)
        with TrainingProgress(console, cfg.log.progress) as progress:
            result = start_run(cfg, progress=progress, should_stop=flag, stop_after=stop_after)
    summary = result.summary
    if not summary["completed"]:
        console.print(
            f"stopped at step {summary['steps']} of {summary['total_steps']}; "
            f"resume with: bbp train --resume {result.run_dir}"
        )
        raise typer.Exit(128 + flag.signal if flag.signal else 0)
    console.print(summary_line(summary, result.run_dir), highlight=False)


@app.command()
@with_plugins
def launch(
    nproc: Annotated[int, typer.Option("--nproc", help="Processes (stages) on this machine")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="A YAML preset")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a value")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue a stopped staged run")] = None,
    nnodes: Annotated[int, typer.Option(help="Machines taking part (multi-machine runs)")] = 1,
    rdzv_endpoint: Annotated[str | None, typer.Option(help="HOST:PORT of the rendezvous")] = None,
    rdzv_backend: Annotated[str, typer.Option(help="torchrun rendezvous backend")] = "c10d",
    rdzv_id: Annotated[str, typer.Option(help="A job id shared by all machines")] = "bbp",
    stop_after: Annotated[
        int | None, typer.Option(help="Stop (checkpoint) after this step")
    ] = None,
) -> None:
    """Train a staged run: one process per stage under torchrun (on one or several machines)."""
    from beyond_backprop.cli.launching import torchrun_command
    from beyond_backprop.cli.supervise import run_torchrun

    command = torchrun_command(
        nproc, config, overrides or [], resume, nnodes, rdzv_endpoint, rdzv_backend, rdzv_id,
        stop_after,
    )  # fmt: skip
    console.print(f"launching {nproc * nnodes} stages: {' '.join(command)}", highlight=False)

    def report(line: str) -> None:
        errors.print(f"error: {line}", highlight=False, markup=False)

    raise typer.Exit(run_torchrun(command, report))


@app.command("list")
@with_plugins
def list_(what: Annotated[str, typer.Argument(help="rules | archs | datasets")]) -> None:
    """List the registered rules, architectures or datasets."""
    from beyond_backprop.data import DATASETS
    from beyond_backprop.models import ARCHITECTURES
    from beyond_backprop.registry import Registry
    from beyond_backprop.rules import RULES

    registries: dict[str, Registry[Any]] = {
        "rules": RULES,
        "archs": ARCHITECTURES,
        "datasets": DATASETS,
    }
    if what not in registries:
        from beyond_backprop.errors import did_you_mean

        hint = did_you_mean(what, LISTS)
        raise ConfigError([f"bbp list: unknown list {what!r}{hint}; valid: {', '.join(LISTS)}"])
    table = Table(show_header=True, header_style="bold")
    table.add_column("name")
    table.add_column("description")
    for entry in registries[what].list():
        table.add_row(entry.name, entry.description)
    console.print(table)


def main() -> None:
    """Entry point: run the app; a user error is one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except BeyondBackpropError as error:
        for line in str(error).splitlines():
            errors.print(f"error: {line}", highlight=False, markup=False)
        sys.exit(error.exit_code)


# the sub-commands live in their own modules, which know nothing of the app
app.command("eval")(with_plugins(eval_))
app.command("plot")(with_plugins(plot))
app.command()(with_plugins(compare))
