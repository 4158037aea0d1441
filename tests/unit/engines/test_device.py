"""Devices, backends and precision: the decision logic (with CUDA's availability patched),
bf16 / fp16 training on the CPU for real, and checkpoints that load across devices."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from beyond_backprop.config import load_config
from beyond_backprop.config.engine import EngineConfig
from beyond_backprop.engines import device as device_module
from beyond_backprop.engines.device import choose_backend, resolve_device
from beyond_backprop.engines.local import LocalEngine
from beyond_backprop.errors import ConfigError
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules import RULES
from beyond_backprop.run import resume_run, start_run
from tests.helpers import AVAILABLE_DEVICES, run_cli, tiny_config

SMOKE = Path(__file__).parents[3] / "configs" / "smoke"


def fake_cuda(monkeypatch: pytest.MonkeyPatch, count: int, nccl: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(device_module.dist, "is_nccl_available", lambda: nccl)


def test_auto_is_the_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert choose_backend("auto", torch.device("cpu")) == "gloo"


def test_cuda_without_a_gpu_is_one_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as error:
        resolve_device("cuda:1")
    assert error.value.problems == [
        f"engine.device: 'cuda:1' needs a CUDA GPU, but this torch ({torch.__version__}) sees "
        "none; use engine.device=cpu (or auto)"
    ]


def test_each_rank_gets_its_own_gpu_and_nccl(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, count=2)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)  # wraps round
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)
    assert choose_backend("auto", torch.device("cuda", 1)) == "nccl"
    assert choose_backend("gloo", torch.device("cuda", 1)) == "gloo"
    with pytest.raises(ConfigError, match="this machine has 2 GPUs"):
        resolve_device("cuda:2")


def test_nccl_that_cannot_serve_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"engine.backend: 'nccl' cannot serve here \(the dev"):
        choose_backend("nccl", torch.device("cpu"))
    fake_cuda(monkeypatch, count=1, nccl=False)
    with pytest.raises(ConfigError, match="this torch has no nccl"):
        choose_backend("nccl", torch.device("cuda", 0))
    assert choose_backend("auto", torch.device("cuda", 0)) == "gloo"


def test_a_bad_device_spelling_is_reported_at_load_time() -> None:
    problems = EngineConfig(device="gpu").problems()
    assert problems == [("device", "'gpu' is invalid: valid: auto, cpu, cuda, cuda:N")]
    assert EngineConfig(device="cuda:3").problems() == []


def test_bbp_train_on_cuda_without_a_gpu_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["train", "--config", str(SMOKE / "dgl.yaml"), "--set", "engine.device=cuda",
            "--set", f"log.root={tmp_path}"]  # fmt: skip
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: engine.device: 'cuda' needs a CUDA GPU, but this torch ({torch.__version__}) "
        "sees none; use engine.device=cpu (or auto)"
    ]
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("device", AVAILABLE_DEVICES)
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("rule", RULES.names())
def test_every_rule_trains_in_low_precision(
    rule: str, precision: str, device: str, tmp_path: Path
) -> None:
    """Each rule's smoke preset, 3 steps under autocast (fp16 with its gradient scalers):
    finite losses, the weights moved, the summary names device and precision."""
    config = load_config(SMOKE / f"{rule}.yaml", [
        f"engine.precision={precision}", f"engine.device={device}", "train.max_steps=3",
        "train.log_every=1", f"log.root={tmp_path}", "log.progress=false",
    ])  # fmt: skip
    result = start_run(config)
    assert result.summary["completed"] and result.summary["precision"] == precision
    assert result.summary["device"].startswith(device)


def one_step(precision: str, rule: str = "backprop") -> dict[str, torch.Tensor]:
    config = tiny_config(rule={"name": rule}, train={"epochs": 1, "max_steps": 1})
    config = replace(config, engine=replace(config.engine, precision=precision))
    engine = LocalEngine(build_experiment(config))
    engine.train()
    return {k: v.float() for k, v in engine.exp.stack.state_dict().items()}


@pytest.mark.parametrize("rule", ["backprop", "fa", "dfa", "dgl"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_low_precision_update_is_the_fp32_update_within_tolerance(
    rule: str, precision: str
) -> None:
    """Autocast changes the update by rounding only: after one step the weights agree with
    fp32 to 2e-3 (bf16 has 8 mantissa bits; fp16's scaled gradients are unscaled exactly)."""
    ours, reference = one_step(precision, rule), one_step("fp32", rule)
    initial = one_step_initial(rule)
    for key, value in reference.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=2e-3, msg=key)
        if key.endswith("weight"):
            assert not torch.equal(value, initial[key])  # the step did move the weights


def one_step_initial(rule: str) -> dict[str, Any]:
    config = tiny_config(rule={"name": rule})
    return {k: v.float() for k, v in build_experiment(config).stack.state_dict().items()}


def test_fp16_scales_each_blocks_losses_and_saves_its_scaler(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, train={"epochs": 1, "max_steps": 2})
    config = replace(config, engine=replace(config.engine, precision="fp16"))
    engine = LocalEngine(build_experiment(config))
    scales = [engine.stepper.optimizers.scale(k) for k in range(len(engine.exp.stack))]
    assert scales == [65536.0] * len(scales)  # torch's initial scale, one scaler per block
    engine.train()
    saved = engine.state_dict()["optimizers"]
    assert all("grad_scaler" in s for s in saved if s is not None)


def test_a_checkpoint_resumes_on_the_cpu_whatever_device_wrote_it(tmp_path: Path) -> None:
    """Checkpoints are read with ``map_location='cpu'`` and copied into the modules where they
    are (a GPU run resumes on a CPU machine and back): a run stopped and resumed with another
    ``engine.device`` spelling of the same device ends bitwise as one that never stopped."""
    config = tiny_config(tmp_path, train={"epochs": 2})
    straight = start_run(config)
    stopped = start_run(replace(config, name="stopped"), stop_after=3)
    assert not stopped.summary["completed"]
    resumed = resume_run(stopped.run_dir)
    assert resumed.summary["completed"]
    a = torch.load(sorted((straight.run_dir / "checkpoints").glob("step-*"))[-1] / "state.pt")
    b = torch.load(sorted((resumed.run_dir / "checkpoints").glob("step-*"))[-1] / "state.pt")
    for key, value in a["model"].items():
        assert value.device.type == "cpu" and torch.equal(value, b["model"][key]), key


@pytest.mark.gpu
def test_a_run_on_the_gpu_keeps_every_tensor_there(tmp_path: Path) -> None:
    config = load_config(SMOKE / "dfa.yaml", ["engine.device=cuda", "train.max_steps=3",
                                               f"log.root={tmp_path}"])  # fmt: skip
    experiment = build_experiment(config).to(torch.device("cuda"))
    engine = LocalEngine(experiment)
    engine.train()
    assert all(p.is_cuda for p in experiment.stack.parameters())
    assert all(b.is_cuda for m in experiment.locals if m for b in m.buffers())
    assert engine.summary()["peak_device_memory_mb"] > 0


def test_synthesizers_and_feedback_layers_stay_in_fp32_under_autocast() -> None:
    """DNI's synthetic gradients (and their regression) and FA's layers are not rounded to
    bf16 when the blocks train in bf16."""
    from beyond_backprop.autograd.feedback import FeedbackLinear
    from beyond_backprop.models.synthesizers import GradientSynthesizer

    synthesizer = GradientSynthesizer((8,), hidden_layers=1, width=16)
    layer = FeedbackLinear.from_linear(torch.nn.Linear(8, 4), torch.randn_like)
    h = torch.randn(3, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.nn.Linear(8, 4)(h).dtype == torch.bfloat16  # autocast is on
        assert synthesizer(h).dtype == torch.float32
        assert layer(h).dtype == torch.float32


def test_batches_reach_the_device_through_pinned_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU batch bound for a GPU is pinned first (so ``non_blocking`` copies overlap);
    one already on its device is not copied at all."""
    from beyond_backprop.engines.device import to_device

    x = torch.ones(3)
    assert to_device(x, torch.device("cpu")) is x
    calls: list[str] = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append("pin") or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: calls.append(f"to {k}") or self)
    to_device(x, torch.device("cuda", 0))
    assert calls == ["pin", "to {'non_blocking': True}"]
