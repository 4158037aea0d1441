"""Greedy InfoMax: gradient-isolated modules, each trained with the CPC InfoNCE loss on its
own patch representations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from beyond_backprop.losses.infonce import grid_info_nce
from beyond_backprop.models.probes import ProbedLocal, probed_locals
from beyond_backprop.models.projection import PatchPredictors
from beyond_backprop.models.stack import BlockStack
from beyond_backprop.rules.base import Batch, BlockContext, LocalLoss, Wiring
from beyond_backprop.rules.registry import register_rule
from beyond_backprop.rules.self_supervised import SelfSupervisedRule, encoder_blocks


def cut_patches(x: Tensor, size: int, stride: int) -> tuple[Tensor, int, int]:
    """Overlapping ``size x size`` patches every ``stride`` pixels, as a batch of images
    ``(B * rows * cols, C, size, size)`` ordered image by image, row by row."""
    b, c = x.shape[:2]
    patches = x.unfold(2, size, stride).unfold(3, size, stride)  # (B, C, rows, cols, s, s)
    rows, cols = patches.shape[2], patches.shape[3]
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(b * rows * cols, c, size, size)
    return patches, rows, cols


def patch_grid(h: Tensor, rows: int, cols: int) -> Tensor:
    """Each patch's encoding (its feature map average-pooled over space, as GIM does) put back
    on the grid: ``(B * rows * cols, D, ...)`` -> ``(B, D, rows, cols)``."""
    z = h.flatten(2).mean(2) if h.dim() > 2 else h
    return z.view(-1, rows, cols, z.shape[1]).permute(0, 3, 1, 2)


@register_rule("gim", "Greedy InfoMax: per-block InfoNCE on patch representations, no gradients")
class GreedyInfoMax(SelfSupervisedRule):
    """Greedy InfoMax (Löwe, O'Connor, Veeling 2019, arXiv 1905.11786, Sec. 3 and 4.1), with
    the CPC vision task (van den Oord, Li, Vinyals 2018, arXiv 1807.03748, Sec. 3.2).

    Each image is cut into a grid of overlapping patches (``patch_size`` pixels every
    ``patch_stride``: on 28x28 digits, 8x8 patches every 4 pixels give a 6x6 grid, each patch
    overlapping its neighbours by half). The encoder (every block below the stack's classifier
    block) encodes every patch on its own; a patch's representation ``z`` is its feature map
    averaged over space. Each block is a gradient-isolated module: its input is detached and
    its loss is the InfoNCE of predicting, from ``z`` at grid row r, the representation ``z``
    at row r + k + 1 (k = 1 .. ``offsets``; the authors' ``skip_step = 1``: the adjacent,
    overlapping row is skipped) with a bilinear map ``W_k``, against the other patches in the
    batch (``negatives`` of them drawn at random per prediction), averaged over the offsets as
    in the authors' code (``offset_reduction: sum`` and ``skip_step: 0`` give the form that
    predicts the adjacent row and sums, as this library did before). Nothing but
    activations crosses a block boundary (wiring ``none``).

    Evaluation: a linear probe per block on the detached grid of patch representations
    (pooled to ``probe_pool`` cells per side), trained online; the top block's probe is the
    network's prediction. The stack's classifier block is not used (it expects whole images).

    Deviations: the context of a prediction is the patch's own representation (no
    autoregressive context network), as we read GIM's vision experiments; all other targets
    at the same offset in the batch are candidate negatives, 16 drawn per prediction by default
    and never the positive itself (the authors' draw may hit it);
    the modules are the blocks of the
    library's small CNN rather than ResNet stages; no augmentation of the patches.
    """

    @dataclass(frozen=True)
    class Config:
        """Greedy InfoMax's options."""

        patch_size: int = 8
        """Side of a square patch, in pixels."""
        patch_stride: int = 4
        """Distance between neighbouring patches (patch_size / 2: half overlap)."""
        offsets: int = 3
        """Predict offsets k = 1 .. offsets (offsets + skip_step must be < grid rows)."""
        skip_step: int = 1
        """Rows skipped between a context and its first target (the authors' code: 1)."""
        offset_reduction: Literal["mean", "sum"] = "mean"
        """How the offsets' InfoNCE terms combine: ``mean`` (the authors' code) or ``sum``."""
        negatives: int | None = 16
        """Negatives drawn per prediction from the batch's targets at the same offset; null:
        all of them (exact but quadratic in the number of patches)."""
        probe_pool: int = 4
        """Probes read the patch grid average-pooled to at most this many cells per side."""

        def problems(self) -> list[tuple[str, str]]:
            """(field, message) for every invalid value."""
            found = []
            for key in ("patch_size", "patch_stride", "offsets", "probe_pool", "negatives"):
                value = getattr(self, key)
                if value is not None and value < 1:
                    found.append((key, f"{getattr(self, key)} is invalid: must be >= 1"))
            if self.skip_step < 0:
                found.append(("skip_step", f"{self.skip_step} is invalid: must be >= 0"))
            return found

    default_wiring: ClassVar[Wiring] = Wiring(forward="activation", backward="none")
    _grid: tuple[int, int] = (0, 0)  # (rows, cols) of the training images' patch grid

    def build_locals(self, stack: BlockStack) -> list[nn.Module | None]:
        """Predictors ``W_1 .. W_K`` and a probe for every encoder block."""
        cfg = self.config
        encoder = encoder_blocks(stack, "gim")
        shape = stack.input_shape
        if len(shape) != 3 or min(shape[1:]) < cfg.patch_size:
            raise ValueError(
                f"gim cuts images into {cfg.patch_size}x{cfg.patch_size} patches: the input "
                f"shape {shape} does not fit (set rule.patch_size)"
            )
        rows, cols = self._grid = self._grid_shape(shape)
        if cfg.offsets + cfg.skip_step >= rows:
            raise ValueError(
                f"gim: rule.offsets={cfg.offsets} plus rule.skip_step={cfg.skip_step} must be "
                f"below the patch grid's {rows} rows (lower one of them)"
            )
        # cpu: a dry run at build time
        probe = torch.zeros(2, shape[0], cfg.patch_size, cfg.patch_size)
        dims = []
        was_training = stack.training
        stack.eval()  # a dry run on a zero patch: no BatchNorm statistics change
        try:
            with torch.no_grad():
                for k in encoder:
                    probe = stack.blocks[k](probe)
                    dims.append(probe.shape[1])
        except RuntimeError as error:
            raise ValueError(
                f"gim encodes {cfg.patch_size}x{cfg.patch_size} patches, which the encoder "
                f"blocks of this architecture cannot take (use model.arch=cnn): {error}"
            ) from error
        finally:
            stack.train(was_training)
        objectives: list[nn.Module | None] = [PatchPredictors(d, cfg.offsets) for d in dims]
        shapes = [(d, rows, cols) for d in dims]
        return probed_locals(
            shapes, objectives, stack.output_shapes[-1][0], cfg.probe_pool, len(stack)
        )

    def transform_batch(self, batch: Batch, step: int) -> Batch:
        """The patches of every image as one batch (image by image, row by row)."""
        patches, _, _ = cut_patches(batch.x, self.config.patch_size, self.config.patch_stride)
        return Batch(patches, batch.y)

    def block_objective(self, k: int, ctx: BlockContext) -> LocalLoss:
        """InfoNCE of every offset on this block's patch grid, and the online probe."""
        local = ctx.local
        if not isinstance(local, ProbedLocal) or not isinstance(local.objective, PatchPredictors):
            raise TypeError(f"gim block {k} needs its PatchPredictors local")
        z = patch_grid(ctx.h_out, *self._grid)
        cfg = self.config
        terms = grid_info_nce(z, list(local.objective.maps), cfg.negatives, cfg.skip_step)
        if cfg.offset_reduction == "mean":
            terms = {key: term / len(terms) for key, term in terms.items()}
        terms["probe"] = local.probe_loss(z, ctx.batch.y)
        return LocalLoss(terms)

    def block_features(self, stack: BlockStack, x: Tensor) -> list[Tensor]:
        """The grid of patch representations ``(B, D, rows, cols)`` of every encoder block."""
        patches, _, _ = cut_patches(x, self.config.patch_size, self.config.patch_stride)
        features = []
        for block in stack.blocks[:-1]:
            patches = block(patches)
            features.append(patch_grid(patches, *self._grid_shape(tuple(x.shape[1:]))))
        return features

    def _grid_shape(self, image_shape: tuple[int, ...]) -> tuple[int, int]:
        """(rows, cols) of the patch grid of an image ``(C, H, W)``."""
        size, stride = self.config.patch_size, self.config.patch_stride
        return (image_shape[1] - size) // stride + 1, (image_shape[2] - size) // stride + 1
