"""The hierarchical generative model of Malach and Shalev-Shwartz (arXiv 1803.09522, section 2):
images generated level by level, a label expanding into patches of latent "semantic" symbols,
each symbol into a patch of lower-level symbols, down to pixels.

Generation, top-down, with patch size ``s`` and ``levels`` = d:

- level d is the label ``y`` itself (one symbol out of ``num_classes``);
- a symbol of level i >= 2 expands into an ``s x s`` patch of level-(i-1) symbols, drawn
  uniformly from that symbol's ``variants`` patches;
- a symbol of level 1 expands into an ``s x s`` patch of pixels, drawn uniformly from its
  ``variants`` binary *base patches*, plus Gaussian pixel noise.

The image is ``s**d x s**d`` pixels. Patches are never shared between two symbols of the same
level (they are drawn without repetition), so a patch determines the symbol above it: the
assumption under which the paper's layerwise algorithm recovers the symbols, level by level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from beyond_backprop.data.base import DatasetSplits, TensorSplit
from beyond_backprop.data.config import DataConfig
from beyond_backprop.data.finish import finalize
from beyond_backprop.data.registry import register_dataset


@dataclass(frozen=True)
class HierarchyConfig:
    """The parameters of the generative model (one grammar per ``seed``)."""

    num_classes: int = 10
    """Labels (the top-level symbols), called digits 0-9 here."""
    levels: int = 3
    """Expansion levels d from the label down to pixels; the image is ``patch**levels`` wide."""
    patch: int = 3
    """Side s of the square patch a symbol expands into."""
    symbols: tuple[int, ...] = (16, 16)
    """Number of latent symbols at levels d-1, ..., 1 (``levels - 1`` entries, top first)."""
    variants: int = 2
    """How many different patches each symbol can expand into (drawn uniformly)."""
    noise: float = 0.1
    """Standard deviation of the Gaussian noise added to the {0, 1} pixels."""
    n_train: int = 10000
    """Training examples (classes balanced)."""
    n_test: int = 2000
    """Test examples (classes balanced)."""
    seed: int = 0
    """Seed of the grammar (the patches) and of the samples."""

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid value."""
        found = []
        for key in ("num_classes", "levels", "patch", "variants", "n_train", "n_test"):
            if getattr(self, key) < 1:
                found.append((key, f"{getattr(self, key)} is invalid: must be >= 1"))
        if self.noise < 0:
            found.append(("noise", f"{self.noise} is invalid: must be >= 0"))
        if found:
            return found
        if len(self.symbols) != self.levels - 1:
            found.append(
                ("symbols", f"{list(self.symbols)} needs levels - 1 = {self.levels - 1} entries")
            )
            return found
        parents = (self.num_classes, *self.symbols)
        children = [float(n) ** (self.patch**2) for n in self.symbols] + [2.0 ** (self.patch**2)]
        for level, (n_parent, n_patches) in enumerate(zip(parents, children, strict=True)):
            if n_parent * self.variants > n_patches:
                found.append(
                    (
                        "variants",
                        f"level {self.levels - level} needs {n_parent * self.variants} distinct "
                        f"patches but only {int(n_patches)} exist: fewer symbols or variants",
                    )
                )
        return found


@dataclass(frozen=True)
class Grammar:
    """The drawn model: ``tables[j]`` maps (symbol, variant) of level d-j to a patch of the level
    below, shape (symbols, variants, s, s): integer symbols for all but the last table, the
    binary base patches (float) for the last."""

    config: HierarchyConfig
    tables: tuple[Tensor, ...]

    def sample(self, labels: Tensor, generator: torch.Generator) -> Tensor:
        """Images (N, 1, s**d, s**d) for ``labels``, expanding level by level."""
        return self.sample_levels(labels, generator)[-1]

    def sample_levels(self, labels: Tensor, generator: torch.Generator) -> list[Tensor]:
        """Every level of the expansion: the symbol grids (N, s**j, s**j) of levels d-1 .. 1,
        then the images (N, 1, s**d, s**d)."""
        grid = labels.view(-1, 1, 1)
        levels = []
        for table in self.tables:
            pick = torch.randint(self.config.variants, grid.shape, generator=generator)
            grid = _tile(table[grid, pick])
            levels.append(grid)
        images = grid + self.config.noise * torch.randn(grid.shape, generator=generator)
        return [*levels[:-1], images.unsqueeze(1).float()]


def _tile(patches: Tensor) -> Tensor:
    """(N, H, W, s, s) patches laid out as one (N, H*s, W*s) grid."""
    n, h, w, s, _ = patches.shape
    return patches.permute(0, 1, 3, 2, 4).reshape(n, h * s, w * s)


def _distinct_patches(count: int, values: int, s: int, generator: torch.Generator) -> Tensor:
    """``count`` different s x s patches with entries in ``range(values)``, drawn uniformly."""
    chosen: list[Tensor] = []
    seen: set[tuple[int, ...]] = set()
    while len(chosen) < count:
        candidate = torch.randint(values, (s, s), generator=generator)
        key = tuple(candidate.flatten().tolist())
        if key not in seen:  # a patch shared by two symbols would hide which one made it
            seen.add(key)
            chosen.append(candidate)
    return torch.stack(chosen)


def make_grammar(config: HierarchyConfig) -> Grammar:
    """Draw the patches of every level from ``config.seed`` (distinct within a level)."""
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(f"{key}: {message}" for key, message in problems))
    generator = torch.Generator().manual_seed(config.seed)
    parents = (config.num_classes, *config.symbols)
    children = (*config.symbols, 2)
    tables = []
    for n_parent, n_child in zip(parents, children, strict=True):
        patches = _distinct_patches(n_parent * config.variants, n_child, config.patch, generator)
        tables.append(patches.view(n_parent, config.variants, config.patch, config.patch))
    tables[-1] = tables[-1].float()  # the base patches: pixels in {0, 1}
    return Grammar(config, tuple(tables))


def generate(config: HierarchyConfig) -> tuple[TensorSplit, TensorSplit]:
    """Training and test splits drawn from the model; a pure function of ``config``."""
    (train_y, train_levels), (test_y, test_levels) = generate_levels(config)
    return TensorSplit(train_levels[-1], train_y), TensorSplit(test_levels[-1], test_y)


def generate_levels(
    config: HierarchyConfig,
) -> tuple[tuple[Tensor, list[Tensor]], tuple[Tensor, list[Tensor]]]:
    """The training and test labels of ``generate`` with every level of their expansion
    (``Grammar.sample_levels``): the true symbols a learner may be checked against."""
    grammar = make_grammar(config)
    generator = torch.Generator().manual_seed(config.seed + 1)

    def draw(n: int) -> tuple[Tensor, list[Tensor]]:
        labels = torch.arange(n) % config.num_classes
        labels = labels[torch.randperm(n, generator=generator)]
        return labels, grammar.sample_levels(labels, generator)

    return draw(config.n_train), draw(config.n_test)


def save_sample_grid(config: HierarchyConfig, path: str, per_class: int = 6) -> None:
    """Write a PNG grid of generated training images: one row per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, _ = generate(config)
    fig, axes = plt.subplots(
        config.num_classes, per_class, figsize=(per_class * 0.9, config.num_classes * 0.9)
    )
    for label, row in enumerate(axes.reshape(config.num_classes, per_class)):
        images = train.x[train.y == label][:per_class]
        for ax, image in zip(row, images, strict=False):
            ax.imshow(image[0].numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(str(label), rotation=0, labelpad=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_expansion_figure(config: HierarchyConfig, path: str, examples: int = 4) -> None:
    """Write a PNG of a few samples level by level: the label, each level's symbol grid
    (colour = symbol index) and the pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grammar = make_grammar(config)
    labels = torch.arange(examples) % config.num_classes
    levels = grammar.sample_levels(labels, torch.Generator().manual_seed(config.seed + 2))
    fig, axes = plt.subplots(examples, len(levels), figsize=(1.6 * len(levels), 1.6 * examples))
    for i, (row, label) in enumerate(zip(axes.reshape(examples, -1), labels.tolist(), strict=True)):
        for j, (ax, grid) in enumerate(zip(row, levels, strict=True)):
            last = j == len(levels) - 1
            image = grid[i][0] if last else grid[i]
            ax.imshow(image.numpy(), cmap="gray_r" if last else "tab20", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("pixels" if last else f"level {config.levels - 1 - j}", fontsize=9)
        row[0].set_ylabel(f"label {label}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


PRESETS: dict[str, HierarchyConfig] = {
    "hierarchical_digits": HierarchyConfig(),
    "hierarchical_digits_l1": HierarchyConfig(levels=1, patch=4, symbols=(), variants=4),
    "hierarchical_digits_l2": HierarchyConfig(levels=2, patch=4, symbols=(16,)),
}
"""Registered datasets: the default 3-level, 27x27 model; a one-level 4x4 model (the label
expands straight into pixels); a two-level 16x16 model."""


def _loader(name: str, config: HierarchyConfig) -> None:
    def load(cfg: DataConfig) -> DatasetSplits:
        train, test = generate(config)
        return finalize(name, train, test, config.num_classes, cfg)

    load.__doc__ = (
        f"Hierarchically generated digits (1803.09522): {config.levels} level(s), "
        f"{config.patch}x{config.patch} patches, {config.patch**config.levels}px images"
    )
    register_dataset(name)(load)


for _name, _config in PRESETS.items():
    _loader(_name, _config)
