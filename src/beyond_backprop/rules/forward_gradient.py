"""Forward gradients with local losses: every block learns from a forward-mode estimate of the
gradient of its own auxiliary loss, by weight or by activity perturbation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from beyond_backprop.autograd.forward_gradient import forward_gradient, with_gradient
from beyond_backprop.models.heads import HeadConfig, build_heads, head_predictions
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import BlockContext, LearningRule, LocalLoss, Objective, Wiring
from beyond_backprop.rules.registry import register_rule


@register_rule("forward_gradient", "forward gradients of per-block local losses (no backward)")
class ForwardGradient(LearningRule):
    """Forward gradients (Baydin, Pearlmutter, Syme, Wood and Torr, arXiv 2202.08587, Sec. 3,
    Algorithm 1) applied to local losses (Ren, Kornblith, Liao and Hinton, arXiv 2210.03310,
    Sec. 3: weight vs activity perturbation, local greedy losses).

    Each block has a local loss: the cross-entropy of an auxiliary head on its output (the
    logits themselves for the last block; the heads of ``models/heads.py``, as in DGL); its
    input is detached, so no signal crosses a block boundary (wiring backward ``none``). The
    gradient of that loss is never back-propagated; it is estimated from directional
    derivatives computed by forward-mode AD (``torch.func.jvp``) along tangents v ~ N(0, I)
    drawn from a generator seeded per (step, block) (``tangent_seed``; the same tangents in
    one process and on any number of stages): ``g = 1/K sum_k (grad L . v_k) v_k``, unbiased.

    - ``mode: weight`` (Baydin et al.): v perturbs every parameter of the block and its head;
      the estimate is the parameters' gradient (one jvp of block + head per tangent).
    - ``mode: activity`` (Ren et al.): v perturbs the block's output z; ``g_z = (dL/dz . v) v``
      is then carried to the block's parameters by the block's own (one-layer) Jacobian,
      ``g_W = (dz/dW)^T g_z``, which has a lower variance (the tangent has z's dimension, not
      the parameters'). The head learns from its exact local gradient.

    Deviations: Ren et al. also split blocks into groups, add local losses per patch and use
    LocalMixer networks; here one loss per block on the library's architectures. In activity
    mode the head's own gradient is exact (it sits outside the block). The jvp reruns the
    block's forward pass, so BatchNorm statistics move once more per tangent (weight mode) and
    dropout draws another mask: use architectures without them for the paper's setting.
    """

    @dataclass(frozen=True)
    class Config:
        """Options of the forward-gradient rule."""

        mode: Literal["weight", "activity"] = "activity"
        """``weight``: perturb the parameters (2202.08587); ``activity``: perturb the block's
        output and map the estimate to the parameters locally (2210.03310)."""
        num_tangents: int = 1
        """Tangents averaged per step (K): the estimate's variance falls as 1/K."""
        head: HeadConfig = field(default_factory=lambda: HeadConfig("mlp", depth=1))
        """The auxiliary classifier on every block but the last (a linear one by default)."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            found = [(f"head.{k}", m) for k, m in self.head.problems()]
            if self.mode not in ("weight", "activity"):
                found.append(("mode", f"{self.mode!r} is invalid: valid: weight, activity"))
            if self.num_tangents < 1:
                found.append(("num_tangents", f"{self.num_tangents} is invalid: must be >= 1"))
            return found

    @property
    def wiring(self) -> Wiring:
        """Forward-only: each block learns from its own loss; nothing goes down."""
        return Wiring(forward="activation", backward="none")

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """An auxiliary head on every block but the last; keeps the blocks for weight mode,
        whose jvp evaluates a block as a function of its parameters."""
        self.blocks: nn.ModuleList = stack.blocks
        heads = build_heads(stack, self.config.head)
        # one draw from the experiment's seeded generator, the same on every rank that builds
        # the experiment: the base of the tangents' own seeds (``tangent_seed``)
        # cpu: a seed drawn once from the global generator
        self.tangent_base = int(torch.randint(0, 2**31, ()).item())
        return heads

    def tangent_seed(self, step: int, k: int) -> int:
        """The seed of block ``k``'s tangents at ``step``: a function of the step and the block
        alone, so that a block draws the same tangents whichever process runs it, and a resumed
        run the same as one that never stopped."""
        return (self.tangent_base * 1_000_003 + step) * 1_009 + k

    def block_objective(self, k: int, ctx: BlockContext) -> Objective:
        """The local loss, whose gradient is the forward-gradient estimate."""
        cuda = [ctx.x_in.device.index or 0] if ctx.x_in.is_cuda else []
        # the tangents come from a generator of their own (the global one is left as it was)
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.tangent_seed(ctx.step, k))
            if self.config.mode == "weight":
                return LocalLoss({"loss": self.weight_perturbed(self.blocks[k], ctx)})
            return LocalLoss({"loss": self.activity_perturbed(ctx)})

    def weight_perturbed(self, block: nn.Module, ctx: BlockContext) -> Tensor:
        """L, with gradient ``(grad_theta L . v) v`` for theta = block and head parameters."""
        head = ctx.local
        own = {n: p for n, p in block.named_parameters() if p.requires_grad}
        heads = {n: p for n, p in head.named_parameters()} if head is not None else {}
        x, y = ctx.x_in.detach(), ctx.batch.y

        def loss(*params: Tensor) -> Tensor:
            h = functional_call(block, dict(zip(own, params[: len(own)], strict=True)), (x,))
            if head is not None:
                h = functional_call(head, dict(zip(heads, params[len(own) :], strict=True)), (h,))
            return F.cross_entropy(h, y)

        primals = [*own.values(), *heads.values()]
        value, grads = forward_gradient(loss, primals, self.config.num_tangents)
        return with_gradient(value, list(zip(primals, grads, strict=True)))

    def activity_perturbed(self, ctx: BlockContext) -> Tensor:
        """L, with gradient ``(dz/dtheta)^T (dL/dz . v) v`` for the block, exact for the head."""
        head, y = ctx.local, ctx.batch.y
        z = ctx.h_out.detach()
        if head is None:
            value, (g_z,) = forward_gradient(
                lambda h: F.cross_entropy(h, y), [z], self.config.num_tangents
            )
            return with_gradient(value, [(ctx.h_out, g_z)])
        params = dict(head.named_parameters())
        frozen = {n: p.detach() for n, p in params.items()}
        value, (g_z,) = forward_gradient(
            lambda h: F.cross_entropy(functional_call(head, frozen, (h,)), y),
            [z],
            self.config.num_tangents,
        )
        # the head's exact gradient: it is the loss itself, not the block being estimated
        head_loss = F.cross_entropy(head(z), y)
        exact = torch.autograd.grad(head_loss, list(params.values()))
        pairs = [(ctx.h_out, g_z), *zip(params.values(), exact, strict=True)]
        return with_gradient(value, pairs)

    def predictions(
        self, stack: BlockStack, locals_: Sequence[nn.Module | None], x: Tensor
    ) -> dict[int | None, Tensor]:
        """The last block's output, and every block's head."""
        return head_predictions(stack, locals_, x)
