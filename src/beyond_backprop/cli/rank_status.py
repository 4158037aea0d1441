"""What each rank of ``bbp launch`` leaves for the launcher: its pid when it starts and its exit
code and ``error:`` lines when it ends, one small JSON file per rank in the folder named by
``BBP_RANK_STATUS_DIR`` (the launcher's temp folder; unset: nothing is written).

torchrun reports a failed worker as its own traceback and exit 1, and starts every worker in a
session of its own; these files are how the launcher learns each rank's real exit code and
reaches the ranks with a signal or, for a hung rank, a kill.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

ENV = "BBP_RANK_STATUS_DIR"


@dataclass
class RankStatus:
    """One rank as the launcher sees it: its pid, and once it ended its code and lines."""

    rank: int
    pid: int | None = None
    code: int | None = None
    lines: list[str] = field(default_factory=list)


def _folder() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def _write(path: Path, data: dict[str, object]) -> None:
    # rename into place: the launcher polls the folder and must never read half a file
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data))
    os.replace(temp, path)


def report_start(rank: int) -> None:
    """Leave this rank's pid for the launcher."""
    folder = _folder()
    if folder is not None:
        _write(folder / f"rank{rank}.pid.json", {"pid": os.getpid()})


def report_end(rank: int, code: int, lines: list[str]) -> None:
    """Leave this rank's exit code and error lines for the launcher."""
    folder = _folder()
    if folder is not None:
        _write(folder / f"rank{rank}.end.json", {"code": code, "lines": lines})


def read_statuses(folder: Path) -> dict[int, RankStatus]:
    """Every rank that reported anything so far, by rank."""
    found: dict[int, RankStatus] = {}
    for path in folder.glob("rank*.json"):
        rank_text, kind, _ = path.name.removeprefix("rank").split(".")
        status = found.setdefault(int(rank_text), RankStatus(int(rank_text)))
        data = json.loads(path.read_text())
        if kind == "pid":
            status.pid = int(data["pid"])
        else:
            status.code, status.lines = int(data["code"]), list(data["lines"])
    return dict(sorted(found.items()))
