"""Run a suite's variants: one-process runs inside this process (``compare.inprocess``: no
start-up per run, the dataset loaded once), staged runs as ``bbp launch`` children. A failure
in one run is its row's; the others go on.

A staged child reports its step to a progress file (``PROGRESS_ENV`` names it;
``cli/progress.py`` writes it), which the caller polls to show the current run's progress.
One ``bbp compare`` at a time writes an output folder (``output_lock``): two would share its
logs and configs and each would report the other's newer runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beyond_backprop.compare.inprocess import DataCache, train_here
from beyond_backprop.compare.suite import Variant
from beyond_backprop.config import dump_config, load_config
from beyond_backprop.errors import ConfigError
from beyond_backprop.tracking.atomic import atomic_write_text
from beyond_backprop.tracking.run_dir import RunDir

log = logging.getLogger(__name__)
WALL_FILE = "compare_wall.json"
PROGRESS_ENV = "BBP_PROGRESS_FILE"
"""The environment variable naming the file where a child run writes ``STEP TOTAL``."""
LOCK_FILE = ".compare.lock"
Poll = Callable[[tuple[int, int] | None], None]
"""Called about four times a second while a run trains, with (step, total) once known."""


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``out``'s lock for the block; a second holder fails at once, naming the first."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / LOCK_FILE).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise ConfigError(
                [f"--out {out}: another bbp compare ({owner}) is writing there; wait for it "
                 "or give another --out"]
            ) from None  # fmt: skip
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Outcome:
    """A variant's run: its summary, or why it failed."""

    variant: Variant
    run_dir: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float | None = None
    reused: bool = False
    error: str | None = None


def find_completed_run(variant: Variant) -> Path | None:
    """The newest finished run of this variant with exactly this config, if any."""
    folder = Path(variant.config.log.root) / variant.config.name
    for run_dir in sorted(folder.glob("*/"), reverse=True):
        summary, config = RunDir(run_dir).summary, RunDir(run_dir).config
        if not (summary.is_file() and config.is_file()):
            continue
        try:
            done = json.loads(summary.read_text()).get("completed")
            same = load_config(config) == variant.config
        except Exception:  # an unreadable old run is simply not reused
            continue
        if done and same:
            return run_dir
    return None


def run_variant(
    variant: Variant,
    out: Path,
    force: bool,
    on_poll: Poll | None = None,
    data: DataCache | None = None,
) -> Outcome:
    """Reuse a finished identical run unless ``force``; else train it: here when it is one
    process, in a ``bbp launch`` child when it is staged."""
    if not force and (existing := find_completed_run(variant)) is not None:
        summary = json.loads(RunDir(existing).summary.read_text())
        wall = _stored_wall(existing)
        return Outcome(variant, existing, summary, wall, reused=True)
    if variant.stages == 1:
        log_file = out / "logs" / f"{variant.label}.log"
        summary, error, wall = train_here(variant, log_file, data or DataCache(), on_poll)
        if summary is None:
            return Outcome(variant, None, {}, wall, error=error)
        trained = Path(summary["run_dir"])
        atomic_write_text(trained / WALL_FILE, json.dumps({"wall_seconds": wall}))
        return Outcome(variant, trained, summary, wall)
    config_file = out / "configs" / f"{variant.label}.yaml"
    atomic_write_text(config_file, dump_config(variant.config))
    command = [sys.executable, "-m", "beyond_backprop", "launch", "--nproc", str(variant.stages),
               "--config", str(config_file)]  # fmt: skip
    log_file = out / "logs" / f"{variant.label}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    progress_file = log_file.with_suffix(".progress")
    progress_file.unlink(missing_ok=True)
    env = {**os.environ, PROGRESS_ENV: str(progress_file)}
    started = time.perf_counter()
    with log_file.open("w") as sink:
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        while (code := _wait(child, 0.25)) is None:
            if on_poll is not None:
                on_poll(read_progress(progress_file))
    wall = time.perf_counter() - started
    progress_file.unlink(missing_ok=True)
    run_dir = find_completed_run(variant)
    if code != 0 or run_dir is None:
        return Outcome(variant, None, {}, wall, error=failure_reason(log_file, code))
    atomic_write_text(run_dir / WALL_FILE, json.dumps({"wall_seconds": wall}))
    summary = json.loads(RunDir(run_dir).summary.read_text())
    return Outcome(variant, run_dir, summary, wall)


def _wait(child: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def read_progress(path: Path) -> tuple[int, int] | None:
    """(step, total) from a child's progress file; None before its first step."""
    try:
        step, total = path.read_text().split()
        return int(step), int(total)
    except (OSError, ValueError):  # not there yet, or caught mid-write
        return None


def run_suite(
    variants: list[Variant],
    out: Path,
    force: bool,
    on_done: Callable[[Outcome], None] | None = None,
    on_start: Callable[[int, Variant], Poll | None] | None = None,
) -> list[Outcome]:
    """Every variant in order; a failure is recorded and the next one runs. ``on_start(i,
    variant)`` may return the poll callback for that run."""
    outcomes = []
    data = DataCache()
    for i, variant in enumerate(variants):
        poll = on_start(i, variant) if on_start is not None else None
        outcome = run_variant(variant, out, force, poll, data)
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes


def _stored_wall(run_dir: Path) -> float | None:
    """The wall time ``bbp compare`` measured when it trained this run (None if it did not)."""
    path = run_dir / WALL_FILE
    return float(json.loads(path.read_text())["wall_seconds"]) if path.is_file() else None


def failure_reason(log_file: Path, code: int) -> str:
    """The line that says why a run failed: our own ``error:`` line, else a worker's
    exception (not torchrun's summary around it), else the signal that killed the root-cause
    rank, else the last line mentioning an error."""
    lines = [
        line.strip() for line in log_file.read_text(errors="replace").splitlines() if line.strip()
    ]
    ours = [line for line in lines if re.search(r"(^|\] )error: ", line)]
    raised = [
        line for line in lines
        if _EXCEPTION.search(line) and "ChildFailedError" not in line
    ]  # fmt: skip
    # torchrun's summary: the root cause's "traceback : Signal 6 (SIGABRT) received by PID n"
    root = lines[next((i for i, line in enumerate(lines) if line.startswith("Root Cause")),
                      len(lines)):]  # fmt: skip
    signalled = [line for line in root if line.startswith("traceback") and "Signal" in line]
    mentions = [line for line in lines if "error" in line.lower()]
    last = (ours or raised or signalled or mentions or lines or ["no output"])[-1]
    return f"exit {code}: {last[:200]}"


_EXCEPTION = re.compile(r"(^|\]: ?)\w+(Error|Exception|Interrupt): ")
