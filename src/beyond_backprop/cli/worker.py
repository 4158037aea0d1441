"""The process ``torchrun`` starts for each stage of ``bbp launch``:
``python -m beyond_backprop.cli.worker --config FILE [--set k=v] [--resume DIR]``.

Reads RANK / WORLD_SIZE (and the rendezvous address) from the environment torchrun sets;
logs and errors carry the rank; a user error exits with its code on every rank.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import torch.distributed as dist

from beyond_backprop.cli.common import StopFlag, console, summary_line
from beyond_backprop.cli.progress import TrainingProgress
from beyond_backprop.config import load_config
from beyond_backprop.engines.process_group import init_process_group
from beyond_backprop.errors import BeyondBackpropError
from beyond_backprop.run import resume_run, start_run
from beyond_backprop.run.plugins import load_plugins
from beyond_backprop.tracking.run_dir import RunDir


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
    try:
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
        # no rank tears its process group down while another is still in a collective or a
        # send: a rank that exits early can abort a peer's gloo teardown (SIGABRT, exit 1)
        dist.barrier()
        if rank == 0:
            if not result.summary["completed"]:
                print(
                    f"stopped at step {result.summary['steps']}; resume with: "
                    f"bbp launch --nproc {dist.get_world_size()} --resume {result.run_dir}"
                )
                sys.exit(128 + (flag.signal or 0) if flag.signal else 0)
            print(summary_line(result.summary, result.run_dir), flush=True)
    except BeyondBackpropError as error:
        for line in str(error).splitlines():
            print(f"[rank {rank}] error: {line}", file=sys.stderr, flush=True)
        sys.exit(error.exit_code)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
