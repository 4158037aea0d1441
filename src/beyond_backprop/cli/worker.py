"""The process ``torchrun`` starts for each stage of ``bbp launch``:
``python -m beyond_backprop.cli.worker --config FILE [--set k=v] [--resume DIR]``.

Reads RANK / WORLD_SIZE (and the rendezvous address) from the environment torchrun sets;
logs and errors carry the rank. Every rank ends with the run's exit code (``errors``): the
ranks agree on a stop signal, so a SIGTERM to one rank stops all with ``128 + N``; a failure
is this rank's code, left for the launcher with its ``error:`` lines (``cli.rank_status``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from beyond_backprop.cli.common import StopFlag, console, summary_line
from beyond_backprop.cli.progress import TrainingProgress
from beyond_backprop.cli.rank_status import report_end, report_start
from beyond_backprop.config import load_config
from beyond_backprop.engines.device import collective_device
from beyond_backprop.engines.messages import guarded
from beyond_backprop.engines.process_group import init_process_group
from beyond_backprop.errors import (
    EXIT_OK,
    EXIT_RANK_FAILED,
    EXIT_SIGNAL_BASE,
    BeyondBackpropError,
)
from beyond_backprop.run import resume_run, start_run
from beyond_backprop.run.plugins import load_plugins
from beyond_backprop.tracking.run_dir import RunDir

log = logging.getLogger("beyond_backprop.cli.worker")


def main(argv: list[str] | None = None) -> None:
    """The torchrun worker: one stage of a staged run."""
    parser = argparse.ArgumentParser(description="one stage of a staged run (run by torchrun)")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--resume", type=Path)
    parser.add_argument("--stop-after", type=int)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO, format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s"
    )
    flag = StopFlag()
    signal.signal(signal.SIGTERM, flag.handle)
    signal.signal(signal.SIGINT, flag.handle)
    report_start(rank)  # after the handlers: a signal the launcher forwards is a stop request
    lines: list[str] = []
    try:
        code = _train(args, rank, flag)
    except BeyondBackpropError as error:
        code, lines = error.exit_code, str(error).splitlines()
    except Exception as error:  # a bug: still this rank's failure, with the run's code for it
        log.exception("unexpected error")
        code, lines = EXIT_RANK_FAILED, [f"stage {rank} (rank {rank}) failed: {error!r}"]
    for line in lines:
        print(f"[rank {rank}] error: {line}", file=sys.stderr, flush=True)
    report_end(rank, code, lines)  # before the teardown, which a lost peer can abort
    if dist.is_initialized():
        dist.destroy_process_group()
    sys.exit(code)


def _train(args: argparse.Namespace, rank: int, flag: StopFlag) -> int:
    """Train this rank's stage; the exit code every rank agrees on."""
    load_plugins()  # those of the bbp launch --plugin that started this worker (BBP_PLUGINS)
    path = RunDir(args.resume).config if args.resume else args.config
    config = load_config(path, args.overrides)
    init_process_group(config, rank, int(os.environ["WORLD_SIZE"]))
    # rank 0 shows the progress bar and the evaluation lines, as bbp train does
    with TrainingProgress(console, rank == 0 and config.log.progress) as progress:
        shown = progress if rank == 0 else None
        if args.resume:
            result = resume_run(args.resume, stop_after=args.stop_after, should_stop=flag,
                                progress=shown)  # fmt: skip
        else:
            result = start_run(config, stop_after=args.stop_after, should_stop=flag,
                               progress=shown)  # fmt: skip
    # the largest signal any rank got: a stop asked of one rank is the whole run's exit code.
    # This collective is also the barrier that keeps a rank from tearing its process group
    # down while another is still in a send (that can abort a peer's gloo teardown).
    signals = torch.tensor([flag.signal or 0], device=collective_device())
    guarded("agree on the exit code", lambda: dist.all_reduce(signals, dist.ReduceOp.MAX))
    signum = int(signals.item())
    if result.summary["completed"]:
        if rank == 0:
            print(summary_line(result.summary, result.run_dir), flush=True)
        return EXIT_OK
    if rank == 0:
        print(
            f"stopped at step {result.summary['steps']}; resume with: "
            f"bbp launch --nproc {dist.get_world_size()} --resume {result.run_dir}",
            flush=True,
        )
    return EXIT_SIGNAL_BASE + signum if signum else EXIT_OK


if __name__ == "__main__":
    main()
