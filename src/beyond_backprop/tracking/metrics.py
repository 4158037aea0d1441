"""Metrics as JSON lines: one record per event, appended and flushed as it happens.

A record is ``{"step", "epoch", "block", "split", "name", "value", "wall"}``; ``wall`` is seconds
since the writer started. A record counts only once its newline is written: a crash can leave a
torn last line, which readers skip and the next writer cuts off before appending.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from beyond_backprop.errors import CheckpointError
from beyond_backprop.tracking.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

Record = dict[str, Any]


def _scan(path: Path, data: bytes) -> tuple[list[tuple[bytes, Record]], int]:
    """Complete records with their raw lines, and the byte offset where the torn tail starts."""
    lines = data.split(b"\n")  # the last element is whatever follows the last newline
    good: list[tuple[bytes, Record]] = []
    good_end, offset, first_bad = 0, 0, 0
    for lineno, line in enumerate(lines[:-1], start=1):
        offset += len(line) + 1
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            first_bad = first_bad or lineno
            continue
        if first_bad:  # a bad line followed by good ones is corruption, not a torn write
            raise CheckpointError(f"{path}: line {first_bad} is not a JSON record")
        good.append((line, record))
        good_end = offset
    return good, good_end


def _read(path: Path) -> tuple[bytes, list[tuple[bytes, Record]], int]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"metrics file {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read metrics file {path}: {exc.strerror}") from exc
    good, good_end = _scan(path, data)
    if good_end < len(data):
        logger.warning("%s: ignoring a torn last line (%d bytes)", path, len(data) - good_end)
    return data, good, good_end


def read_metrics(path: str | os.PathLike[str]) -> list[Record]:
    """All complete records of a metrics file, in order; a torn last line is skipped."""
    return [record for _, record in _read(Path(path))[1]]


def truncate_after(path: str | os.PathLike[str], step: int) -> int:
    """Keep only records with ``step <= step`` (rewritten atomically); returns how many remain.

    Used on resume from a checkpoint at ``step``, so that the resumed run's log equals that of a
    run that never stopped. A missing file is left missing. Close any writer on ``path`` first.
    """
    target = Path(path)
    if not target.exists():
        return 0
    data, good, good_end = _read(target)
    kept = [line for line, record in good if record["step"] <= step]
    if len(kept) == len(good) and good_end == len(data):
        return len(kept)  # nothing to drop: spare the rewrite
    atomic_write_bytes(target, b"".join(line + b"\n" for line in kept))
    return len(kept)


class MetricsWriter:
    """Append metric records to a JSONL file, one line per record, flushed per write.

    Examples:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl"
        >>> with MetricsWriter(path) as writer:
        ...     _ = writer.log(step=1, epoch=0, name="loss", value=0.5, block=0, split="train")
        >>> [(r["step"], r["name"], r["value"]) for r in read_metrics(path)]
        [(1, 'loss', 0.5)]
    """

    def __init__(
        self, path: str | os.PathLike[str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data, _, good_end = _read(self.path)
            if good_end < len(data):
                # Appending after a torn line would glue the next record onto it.
                os.truncate(self.path, good_end)
        # Line-buffered: each record reaches the OS as soon as its newline is written.
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._clock = clock
        self._start = clock()

    def _wall(self) -> float:
        return round(self._clock() - self._start, 6)

    @staticmethod
    def _record(
        step: int,
        epoch: int,
        name: str,
        value: float,
        block: int | None,
        split: str | None,
        wall: float,
    ) -> Record:
        return {
            "step": int(step),
            "epoch": int(epoch),
            "block": None if block is None else int(block),
            "split": split,
            "name": name,
            "value": float(value),
            "wall": wall,
        }

    def _write(self, records: list[Record]) -> None:
        # One write call per batch, so a crash tears at most the last line.
        self._file.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
        self._file.flush()

    def log(
        self,
        step: int,
        epoch: int,
        name: str,
        value: float,
        *,
        block: int | None = None,
        split: str | None = None,
    ) -> Record:
        """Append one record and return it."""
        record = self._record(step, epoch, name, value, block, split, self._wall())
        self._write([record])
        return record

    def log_many(
        self,
        step: int,
        epoch: int,
        values: Mapping[str, float],
        *,
        block: int | None = None,
        split: str | None = None,
    ) -> list[Record]:
        """Append one record per ``name: value`` (same step, epoch, block, split); return them."""
        wall = self._wall()  # one event: one time for all its records
        records = [self._record(step, epoch, n, v, block, split, wall) for n, v in values.items()]
        if records:
            self._write(records)
        return records

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
