"""How well a finished ``provable`` run recovered the symbols of the generative model.

For each clustering layer k of a run on a ``hierarchical_digits*`` dataset, compares the
layer's symbol (cluster) of every test patch with the true symbol of the matching level
(layer k reads level k's patches and names level k+1's symbols):

- purity: the fraction of patches whose cluster's most frequent true symbol is their own;
- recovery: the fraction of patches whose symbol's most frequent cluster is their own.

Both are 1 when the clusters equal the symbols up to renaming (the paper's claim).

Usage: ``python examples/provable_symbols.py RUN_DIR``, or ``--stats`` for how distinct the
symbols' label distributions P(y | symbol) of the default model are (what the clustering of a
layer's label predictions can separate).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from beyond_backprop.config.load import load_config
from beyond_backprop.data.hierarchical_digits import PRESETS, HierarchyConfig, generate_levels
from beyond_backprop.experiment import build_experiment
from beyond_backprop.tracking.checkpoint import load_latest_checkpoint


def agreement(clusters: torch.Tensor, symbols: torch.Tensor) -> tuple[float, float]:
    """(purity, recovery) of integer labelings ``clusters`` and ``symbols`` of the same items."""
    table = torch.zeros(int(clusters.max()) + 1, int(symbols.max()) + 1)
    table.index_put_((clusters, symbols), torch.ones(len(clusters)), accumulate=True)
    total = float(table.sum())
    return float(table.max(dim=1).values.sum()) / total, float(
        table.max(dim=0).values.sum()
    ) / total


def main(run_dir: str) -> None:
    config = load_config(Path(run_dir) / "config.yaml")
    if config.data.name not in PRESETS:
        raise SystemExit(f"{config.data.name!r} has no true symbols; valid: {', '.join(PRESETS)}")
    experiment = build_experiment(config)
    loaded = load_latest_checkpoint(run_dir)
    if loaded is None:
        raise SystemExit(f"no checkpoint in {run_dir}")
    experiment.stack.load_state_dict(loaded[1]["model"])
    experiment.stack.eval()
    _, (_, levels) = generate_levels(PRESETS[config.data.name])
    x = experiment.data.test.x
    n = len(x)
    symbol_grids = levels[:-1][::-1]  # level 1, level 2, ... (finest first)
    with torch.no_grad():
        h = x
        for k, block in enumerate(list(experiment.stack.blocks)[:-1]):
            h = block(h)
            clusters = h.argmax(dim=1).flatten()
            symbols = symbol_grids[k][:n].flatten()
            purity, recovery = agreement(clusters, symbols)
            print(
                f"layer {k} -> level {k + 1} symbols: purity {purity:.4f} recovery {recovery:.4f}"
            )


def label_statistics(config: HierarchyConfig) -> None:
    """Per latent level: the mean largest P(y | symbol) and the L2 distance from each symbol's
    label distribution to the nearest other symbol's (training split, positions pooled)."""
    (labels, levels), _ = generate_levels(config)
    for j, grid in enumerate(levels[:-1]):
        per_image = grid.shape[1] * grid.shape[2]
        symbols = grid.flatten()
        table = torch.zeros(int(symbols.max()) + 1, config.num_classes)
        table.index_put_(
            (symbols, labels.repeat_interleave(per_image)),
            torch.ones(len(symbols)),
            accumulate=True,
        )
        dist = table / table.sum(dim=1, keepdim=True)
        gaps = torch.cdist(dist, dist).fill_diagonal_(float("inf")).min(dim=1).values
        print(
            f"level {config.levels - 1 - j}: mean max P(y|s) {dist.max(1).values.mean():.3f}, "
            f"nearest other symbol: min {gaps.min():.3f} median {gaps.median():.3f}"
        )


if __name__ == "__main__":
    if sys.argv[1] == "--stats":
        label_statistics(HierarchyConfig())
    else:
        main(sys.argv[1])
