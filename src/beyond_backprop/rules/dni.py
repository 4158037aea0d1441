"""Decoupled Neural Interfaces: every block updates at once with a synthetic gradient."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beyond_backprop.models.stack import BlockStack
from beyond_backprop.models.synthesizers import DNILocal, GradientSynthesizer, InputSynthesizer
from beyond_backprop.rules.base import (
    Batch,
    BlockContext,
    LearningRule,
    LocalLoss,
    Objective,
    OutputGradient,
    Wiring,
)
from beyond_backprop.rules.registry import register_rule


@register_rule(
    "dni",
    "synthetic gradients M(h) after every block, regressed on the bootstrapped gradient "
    "(label-conditioned: rule cdni or rule.conditioned=true)",
)
class DNI(LearningRule):
    """Decoupled Neural Interfaces using Synthetic Gradients (Jaderberg et al., arXiv
    1608.05343, Sections 2-3.1; the bootstrapped BP(0) target of Appendix A).

    After every block k but the top, a synthesizer M_k predicts dL/dh_k from h_k (and, for
    cDNI, from the one-hot label). Block k updates at once with the injected gradient
    M_k(h_k): it never waits for the blocks above (update unlocking). M_k learns by regression
    onto the gradient that arrives later: for the block below the top, the true gradient; for
    every other block, the gradient that block k+1's own synthetic update back-propagates into
    h_k (bootstrapping, so no block ever needs the true gradient from more than one block up).
    The top block learns from the task loss. With ``synthetic_inputs``, every block but the
    first also learns I_k(x), a prediction of its input h_{k-1} from the network input
    (forward unlocking, Section 3.3).

    Scaling: the engine's loss is a batch mean, so a true gradient row is 1/B of the gradient
    of that example's own loss. M_k predicts the per-example gradient (target ``B * grad``) and
    the block receives ``M_k(h_k) / B``: the synthesizer's targets do not shrink with the batch
    size, which keeps its regression well scaled for any optimizer.

    Deviations: the paper trains for 500k steps with Adam (learning rate 3e-5) and batch 256;
    the presets use far shorter budgets with a larger learning rate. The synthesizer's loss is
    half the squared error averaged (or summed: ``synth_reduction``) over features and
    averaged over the batch, on the per-example scale above. In the LocalEngine every block
    still trains on its real input: synthetic inputs only learn I_k (a term of block k's
    objective); an engine that serves the ``synthetic`` forward wiring may start block k from
    I_k(x) before h_{k-1} arrives. The regression pairs h_k with the gradient of the same
    batch, so the rule does not claim ``stale_ok``.
    """

    @dataclass(frozen=True)
    class Config:
        """Options of DNI / cDNI."""

        conditioned: bool = False
        """Condition every synthesizer on the one-hot label (cDNI, Section 3.1)."""
        loss: Literal["cross_entropy", "mse"] = "cross_entropy"
        """The top block's task loss: cross-entropy, or the squared error onto the one-hot
        target (the regression setting of the 1703.00522 checks)."""
        hidden_layers: int = 2
        """Hidden layers of each gradient synthesizer (the paper: 2; 0 gives a linear one)."""
        width: int = 1024
        """Units of each hidden layer of a synthesizer on vector features (the paper: 1024)."""
        conv_width: int = 128
        """Channels of each hidden 5x5 conv layer of a synthesizer on feature maps (128)."""
        batch_norm: bool = True
        """Batch normalisation after each hidden layer of the synthesizers."""
        synth_reduction: Literal["mean", "sum"] = "mean"
        """How the synthesizer's squared error is reduced over an example's features: ``mean``
        keeps its scale independent of the activation size (stable with SGD on wide feature
        maps); ``sum`` is the plain squared norm (the measured MNIST presets use it, with
        Adam, which does not care about the scale)."""
        learn_synthesizers: bool = True
        """Train the synthesizers; false keeps them at their zero initialisation, so blocks
        below the top get no gradient at all (the paper's "no backprop" baseline)."""
        synthetic_inputs: bool = False
        """Also learn I_k(x) ~ h_{k-1} for every block but the first (forward unlocking)."""
        input_hidden_layers: int = 2
        """Hidden layers of each input synthesizer."""
        input_width: int = 1024
        """Units of each hidden layer of an input synthesizer."""

        def problems(self) -> list[tuple[str, str]]:
            """Value checks: sizes must be usable."""
            found = []
            for name in ("hidden_layers", "input_hidden_layers"):
                if getattr(self, name) < 0:
                    found.append((name, f"must be >= 0, got {getattr(self, name)}"))
            for name in ("width", "conv_width", "input_width"):
                if getattr(self, name) < 1:
                    found.append((name, f"must be >= 1, got {getattr(self, name)}"))
            return found

    # the gradient a block learns from is optional and late: nothing waits for it
    default_wiring: ClassVar[Wiring] = Wiring(
        forward="activation", backward="delayed_gradient", estimates_gradient=True
    )

    @property
    def wiring(self) -> Wiring:
        """Forward ``synthetic`` with ``synthetic_inputs``: that option is what makes the
        forward pass unlockable."""
        if self.config.synthetic_inputs:
            return replace(self.default_wiring, forward="synthetic")
        return self.default_wiring

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """A gradient synthesizer after every block but the top; an input synthesizer
        before every block but the first when ``synthetic_inputs`` is on."""
        cfg = self.config
        num_classes = stack.output_shapes[-1][0] if cfg.conditioned else 0
        locals_: list[nn.Module | None] = []
        for k in range(len(stack)):
            gradient = None
            if k < len(stack) - 1:
                shape = stack.output_shapes[k]
                width = cfg.conv_width if len(shape) == 3 else cfg.width
                gradient = GradientSynthesizer(
                    shape, num_classes, cfg.hidden_layers, width, cfg.batch_norm
                )
                if not cfg.learn_synthesizers:
                    gradient.requires_grad_(False)
            input_synth = None
            if cfg.synthetic_inputs and k > 0:
                input_synth = InputSynthesizer(
                    stack.input_shape,
                    stack.input_shape_of(k),
                    cfg.input_hidden_layers,
                    cfg.input_width,
                    cfg.batch_norm,
                )
            has_any = gradient is not None or input_synth is not None
            locals_.append(DNILocal(gradient, input_synth) if has_any else None)
        return locals_

    def task_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """The top block's loss (a batch mean)."""
        if self.config.loss == "mse":
            target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
            return F.mse_loss(logits, target)
        return F.cross_entropy(logits, y)

    def synth_loss(self, predicted: Tensor, target: Tensor) -> Tensor:
        """Half the squared error per example (summed or averaged over its features, see
        ``synth_reduction``), averaged over the batch."""
        error = (predicted - target).pow(2).flatten(1)
        per_example = error.sum(1) if self.config.synth_reduction == "sum" else error.mean(1)
        return 0.5 * per_example.mean()

    def label(self, y: Tensor, synthesizer: GradientSynthesizer) -> Tensor | None:
        """The one-hot label for a conditioned synthesizer, None for plain DNI."""
        if synthesizer.num_classes == 0:
            return None
        return F.one_hot(y, synthesizer.num_classes).to(torch.get_default_dtype())

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """Top block: the task loss. Every other block: the synthetic gradient M_k(h_k) / B,
        with M_k's regression onto the gradient sent down by block k+1 as a term when that
        gradient is already in the inbox (otherwise ``late_terms`` learns from it later)."""
        local = ctx.local
        assert local is None or isinstance(local, DNILocal)
        terms: dict[str, Tensor] = {}
        if local is not None and local.input_synth is not None and not ctx.synthetic_input:
            # the real input is the target only: the block below must not learn from it
            terms["input_synth"] = F.mse_loss(local.input_synth(ctx.batch.x), ctx.x_in.detach())
        if ctx.is_last:
            terms["loss"] = self.task_loss(ctx.h_out, ctx.batch.y)
            return LocalLoss(terms)
        assert local is not None and local.gradient is not None
        # h is detached for the synthesizer: its regression trains M_k only, never block k
        # (nor, through block k's input, the block below)
        predicted = local.gradient(ctx.h_out.detach(), self.label(ctx.batch.y, local.gradient))
        if "grad" in ctx.inbox:
            terms.update(self.regression(predicted, ctx))
        # detached: the injected gradient trains block k only, never the synthesizer
        return OutputGradient(grad=predicted.detach() / ctx.h_out.shape[0], terms=terms)

    def late_terms(self, k: int, ctx: BlockContext) -> dict[str, Tensor]:
        """What learns once the step's real signals have arrived: M_k's regression on the
        step's (h_k, label) pair onto ``inbox["grad"]``, and I_k's onto the real input
        ``inbox["input"]`` (forward unlocking).

        The synthesizers are applied again with their current parameters (they have learned
        from earlier targets since), in training mode as at the step, but BatchNorm's running
        statistics are left as they were: they moved once, when the step ran."""
        local = ctx.local
        if not isinstance(local, DNILocal):
            return {}
        terms: dict[str, Tensor] = {}
        if "input" in ctx.inbox and local.input_synth is not None:
            estimate = _without_moving_statistics(local.input_synth, ctx.batch.x)
            terms["input_synth"] = F.mse_loss(estimate, ctx.inbox["input"])
        if "grad" in ctx.inbox and local.gradient is not None:
            label = self.label(ctx.batch.y, local.gradient)
            predicted = _without_moving_statistics(local.gradient, ctx.h_out, label)
            terms.update(self.regression(predicted, ctx))
        return terms

    def synthetic_input(self, k: int, local: nn.Module | None, batch: Batch) -> Tensor | None:
        """I_k(x), when synthetic inputs are on (Section 3.3)."""
        if not isinstance(local, DNILocal) or local.input_synth is None:
            return None
        return local.input_synth(batch.x)

    def regression(self, predicted: Tensor, ctx: BlockContext) -> dict[str, Tensor]:
        """The ``synth`` term: M_k's prediction against the per-example gradient that block
        k+1 sent down (none when the synthesizers do not learn)."""
        if not self.config.learn_synthesizers:
            return {}
        # the target is a message (a .grad from block k+1's backward): no graph behind it
        target = ctx.inbox["grad"] * ctx.h_out.shape[0]
        return {"synth": self.synth_loss(predicted, target)}

    def diagnostics(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], batch: Batch, step: int
    ) -> dict[tuple[int | None, str], float]:
        """Per block below the top: ``synth_error`` (the synthesizer's loss against the TRUE
        gradient, on the same per-example scale as the ``synth`` term) and ``cos`` (cosine
        between the synthetic and the true gradient over the whole batch)."""
        num_blocks = len(stack)
        figures: dict[tuple[int | None, str], float] = {}
        if num_blocks < 2:
            return figures
        with _buffers_kept([stack, *(m for m in locals_ if m is not None)]):
            hidden: list[Tensor] = []
            h = batch.x
            for block in stack.blocks[:-1]:
                h = block(h)
                hidden.append(h)
            loss = self.task_loss(stack.blocks[-1](h), batch.y)
            # autograd.grad, not backward: no .grad is left on any parameter
            true_grads = torch.autograd.grad(loss, hidden)
            with torch.no_grad():
                for k, (h_k, g_k) in enumerate(zip(hidden, true_grads, strict=True)):
                    local = locals_[k]
                    assert isinstance(local, DNILocal) and local.gradient is not None
                    scale = h_k.shape[0]
                    predicted = local.gradient(h_k, self.label(batch.y, local.gradient))
                    error = self.synth_loss(predicted, g_k * scale)
                    cos = F.cosine_similarity(predicted.flatten(), g_k.flatten(), dim=0)
                    figures[(k, "synth_error")] = float(error)
                    figures[(k, "cos")] = float(cos)
        return figures


def _without_moving_statistics(module: nn.Module, *args: Tensor | None) -> Tensor:
    """``module(*args)`` with fresh copies of its buffers taking the running-statistics
    update, so a second pass over a step's data leaves BatchNorm where the step left it."""
    buffers = {name: b.clone() for name, b in module.named_buffers()}
    return torch.func.functional_call(module, buffers, args)


@contextlib.contextmanager
def _buffers_kept(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Run a diagnostic forward pass in training mode (the mode the gradients are taken in)
    without letting it move BatchNorm's running statistics: training must not depend on
    whether diagnostics are on."""
    saved = [[b.clone() for b in m.buffers()] for m in modules]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, copies in zip(modules, saved, strict=True):
                for buffer, copy in zip(module.buffers(), copies, strict=True):
                    buffer.copy_(copy)
