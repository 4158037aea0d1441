"""Run torchrun for ``bbp launch`` and end with the run's exit code, not torchrun's.

torchrun starts each worker in a session of its own and reports any failed worker as exit 1
with its own traceback, and waits 30 s for a worker that does not answer its SIGTERM (a hung or
stopped one) before killing it. So the launcher, through the ranks' status files
(``cli.rank_status``): forwards SIGTERM / SIGINT to every rank (they agree on a stop at a step
boundary, checkpoint and exit ``128 + N``); once one rank has ended with a failure, kills the
ranks still running after a short grace (a hung rank ends the run within
``engine.timeout_s`` + the grace); and ends with the failing rank's own ``error:`` line and code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from beyond_backprop.cli.rank_status import ENV, RankStatus, read_statuses
from beyond_backprop.errors import EXIT_NON_FINITE, EXIT_RANK_FAILED, EXIT_SIGNAL_BASE

GRACE_S = 3.0
"""How long ranks may take to end once one has failed (the others lose it at once, or within
``engine.timeout_s`` if it hung) before the launcher kills them."""
POLL_S = 0.2


def run_torchrun(command: list[str], report: Callable[[str], None]) -> int:
    """Run ``command`` (torchrun and its workers) to the end; ``report`` gets each line to
    print; returns the run's exit code."""
    with tempfile.TemporaryDirectory(prefix="bbp-launch-") as temp:
        folder = Path(temp)
        process = subprocess.Popen(command, env={**os.environ, ENV: temp}, start_new_session=True)
        received: list[int] = []

        def forward(signum: int, frame: FrameType | None) -> None:
            # to the ranks themselves (torchrun would forward it too, but only after its own
            # traceback); to torchrun while no rank has started
            received.append(signum)
            running = [s.pid for s in read_statuses(folder).values() if s.code is None and s.pid]
            for pid in running or [process.pid]:
                _kill(pid, signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            _watch(process, folder)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        code, lines = outcome(read_statuses(folder), received, process.returncode)
    for line in lines:
        report(line)
    return code


def _watch(process: subprocess.Popen[bytes], folder: Path) -> None:
    """Wait for torchrun; once a rank failed, kill the ranks still running after the grace."""
    failed_at: float | None = None
    while True:
        try:
            process.wait(timeout=POLL_S)
            return
        except subprocess.TimeoutExpired:
            pass
        statuses = read_statuses(folder).values()
        if failed_at is None and any(s.code for s in statuses):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > GRACE_S:
            for status in statuses:
                if status.code is None and status.pid:
                    _kill(status.pid, signal.SIGKILL)
            failed_at = float("inf")  # once: torchrun now sees them gone and ends


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.kill(pid, signum)


def outcome(
    statuses: dict[int, RankStatus], received: list[int], returncode: int
) -> tuple[int, list[str]]:
    """The run's exit code and the lines that say why, from what the ranks reported."""
    if received:  # the ranks print where the run stopped and how to resume it
        return EXIT_SIGNAL_BASE + received[0], []
    failed = [s for s in statuses.values() if s.code]
    silent = [s for s in statuses.values() if s.code is None]
    if not failed and not silent and returncode == 0:
        return 0, []
    lines = []
    code = EXIT_RANK_FAILED
    if failed:
        # the cause first: bad input or a non-finite loss on one rank makes its peers lose
        # it (exit 4), and a signal stop ends every rank with the same 128 + N
        cause = min(failed, key=lambda s: (_rank_of_cause(s.code or 0), s.rank))
        code = cause.code or EXIT_RANK_FAILED
        lines += [f"rank {cause.rank}: {line}" for line in cause.lines]
    for status in silent:
        lines.append(
            f"rank {status.rank} (stage {status.rank}) ended without a report: it was killed, "
            "or stopped or hung past engine.timeout_s"
        )
    if not statuses:
        lines.append(f"torchrun exited with code {returncode} before any rank started")
    return code, lines


def _rank_of_cause(code: int) -> int:
    if code <= EXIT_NON_FINITE:
        return 0
    return 1 if code >= EXIT_SIGNAL_BASE else 2
