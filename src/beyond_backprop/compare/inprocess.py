"""Train a one-process variant inside the ``bbp compare`` process.

A child process per run pays Python's and torch's start-up and reads the dataset again; here
every one-process run shares the loaded torch and, per data config, the loaded dataset
(``DataCache``). What one run could leave behind for the next is put back after it: the
thread count, the deterministic-algorithms flag, the root logger's handlers (the run logs to
its own file, warnings included, as a child would), the signal handlers; and the peak-memory
mark is reset before it starts, so its ``peak MiB`` is its own peak, not an earlier run's.
An exception is the run's failure (its row says why) and the next run goes on; Ctrl-C or
SIGTERM stops the run at the next step boundary with a checkpoint (as ``bbp train`` does),
then the suite.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from beyond_backprop.compare.suite import Variant
from beyond_backprop.data import DatasetSplits, load_dataset
from beyond_backprop.data.config import DataConfig
from beyond_backprop.errors import BeyondBackpropError
from beyond_backprop.run.session import start_run

log = logging.getLogger(__name__)
Poll = Callable[[tuple[int, int] | None], None]


class SuiteStopped(KeyboardInterrupt):
    """A signal stopped an in-process run (with a checkpoint); the suite stops too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class DataCache:
    """Each data config's dataset, loaded once for the whole suite (runs only read it). A
    config that differs only in ``test_limit`` shares the load: the limit keeps the first N
    evaluation examples, as the loader's own limit does."""

    def __init__(self) -> None:
        self._loaded: dict[DataConfig, DatasetSplits] = {}

    def get(self, config: DataConfig) -> DatasetSplits:
        whole = replace(config, test_limit=None)
        if whole not in self._loaded:
            self._loaded[whole] = load_dataset(whole)
        splits, n = self._loaded[whole], config.test_limit
        if n is None or n >= len(splits.test):
            return splits
        if n < 1:  # the loader's own message
            return load_dataset(config)
        return replace(splits, test=splits.test.head(n))


class _LogProgress:
    """The engine's ``Progress`` for an in-process run: the step to ``poll``, each
    evaluation as a line in the run's log (as ``bbp train`` prints it)."""

    def __init__(self, poll: Poll | None, sink: logging.Handler) -> None:
        self.poll, self.sink, self._polled = poll, sink, 0.0

    def on_step(self, step: int, total: int, epoch: int) -> None:
        now = time.monotonic()
        if self.poll is not None and (now - self._polled > 0.25 or step == total):
            self.poll((step, total))
            self._polled = now

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        shown = " ".join(f"{key} {value:.4f}" for key, value in metrics.items())
        text = f"epoch {epoch + 1} step {step} {shown}"
        self.sink.handle(log.makeRecord(log.name, logging.INFO, "", 0, text, (), None))


def train_here(
    variant: Variant, log_file: Path, data: DataCache, poll: Poll | None = None
) -> tuple[dict[str, Any] | None, str | None, float]:
    """(summary, None, wall seconds) of the trained run, or (None, why it failed, wall)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sink = logging.FileHandler(log_file, mode="w")
    sink.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    stop: list[int] = []
    started = time.perf_counter()
    with _isolated(sink, stop):
        try:
            splits = data.get(variant.config.data)
            result = start_run(variant.config, progress=_LogProgress(poll, sink),
                               should_stop=lambda: bool(stop), data=splits)  # fmt: skip
        except BeyondBackpropError as error:
            return None, _reason(error, error.exit_code, sink), time.perf_counter() - started
        except Exception as error:  # any bug in one rule is that row's failure, not the suite's
            return None, _reason(error, 1, sink), time.perf_counter() - started
    wall = time.perf_counter() - started
    if stop:
        raise SuiteStopped(stop[0])
    return result.summary, None, wall


def _reason(error: Exception, code: int, sink: logging.Handler) -> str:
    """The row's failure text, in the form a child's exit would give; the traceback goes to
    the run's log."""
    text = "".join(traceback.format_exception(error))
    sink.handle(log.makeRecord(log.name, logging.ERROR, "", 0, text, (), None))
    if isinstance(error, BeyondBackpropError):
        return f"exit {code}: error: {'; '.join(str(error).splitlines())[:200]}"
    return f"exit {code}: {type(error).__name__}: {str(error)[:200]}"


@contextlib.contextmanager
def _isolated(sink: logging.Handler, stop: list[int]) -> Iterator[None]:
    """Run the block as if in its own process, and put the process back afterwards."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.append(signum)

    main = threading.current_thread() is threading.main_thread()  # signals: main thread only
    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM) if main}
    root.handlers = [sink]
    logging.captureWarnings(True)  # a run's warnings go to its log, as a child's would
    reset_peak_memory()
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers = handlers
        sink.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def reset_peak_memory() -> None:
    """Free what earlier runs left and reset this process's peak-memory mark (Linux: the
    high-water mark that ``getrusage`` reports; elsewhere nothing is reset)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed heap otherwise
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # "5": reset the peak resident set size to the current one
