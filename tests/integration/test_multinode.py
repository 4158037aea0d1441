"""Several machines, proven on one: two ``bbp launch --nnodes 2 --nproc 1`` processes (two
"nodes" on loopback, c10d rendezvous) train to bitwise the parameters of ``--nproc 2``."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SMOKE = Path(__file__).parents[2] / "configs" / "smoke" / "dgl.yaml"
SETTINGS = ["engine.stages=2", "engine.schedule=pipelined", "engine.boundaries=[1]",
            "engine.threads=1",
            "train.max_steps=6", "log.progress=false"]  # fmt: skip


def launch(extra: list[str], root: Path) -> subprocess.Popen[str]:
    sets = [a for s in [*SETTINGS, f"log.root={root}"] for a in ("--set", s)]
    command = [sys.executable, "-m", "beyond_backprop", "launch", *extra,
               "--config", str(SMOKE), *sets]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def final_states(root: Path) -> list[dict[str, torch.Tensor]]:
    (run_dir,) = root.glob("*/*/")
    step_dir = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    return [torch.load(step_dir / f"rank{r}.pt")["model"] for r in range(2)]


@pytest.mark.timeout(400)
def test_two_nodes_on_loopback_train_like_two_local_processes(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    args = ["--nnodes", "2", "--nproc", "1", "--rdzv-endpoint", endpoint, "--rdzv-id", "loopback"]
    nodes = []
    for _ in range(2):
        nodes.append(launch(args, tmp_path / "nodes"))
        time.sleep(3)  # the first "machine" hosts the rendezvous store, as on a real cluster
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert all(node.returncode == 0 for node in nodes), outputs
    one_machine = launch(["--nproc", "2"], tmp_path / "local")
    output = one_machine.communicate(timeout=300)[0]
    assert one_machine.returncode == 0, output
    for a, b in zip(
        final_states(tmp_path / "nodes"), final_states(tmp_path / "local"), strict=True
    ):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
