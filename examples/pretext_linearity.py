"""The check of Lee, Lei, Saunshi, Zhuo, *Predicting What You Already Know Helps* (arXiv
2008.01064, Sec. 6): after learning psi(X1) to predict X2, a *linear* predictor of the label on
psi(X1) should do better with few labels than one on X1 itself.

For a finished ``pretext`` run, linear probes (``eval/probe.py``: standardised features, Adam,
softmax regression) are fitted on the first n labelled training images, for several n, on

- ``pretext``: psi(X1), every encoder block of the trained network (pooled as the probes do);
- ``random init``: the same network with its initial (untrained) parameters;
- ``raw X1``: the pixels of X1 themselves (the visible half, flattened);

and scored on the run's whole evaluation split. Writes a JSON summary and a PNG (test accuracy
against n, per kind; the encoder kinds at their best block).

    python -m examples.pretext_linearity RUN_DIR [--sizes 100 300 1000 3000 10000] [--out DIR]

Probe training is seconds per fit on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from beyond_backprop.data import TensorSplit
from beyond_backprop.data.masks import hide
from beyond_backprop.eval.probe import fit_probes
from beyond_backprop.experiment import build_experiment
from beyond_backprop.rules.pretext import Pretext
from examples.reconstructions import load_run

Features = Callable[[Tensor], list[Tensor]]


def probe_epochs(n: int) -> int:
    """Enough Adam steps for small n too: about 20000 / n epochs (at least 10)."""
    return max(10, math.ceil(20000 / n))


def linearity(
    run_dir: str | Path, sizes: Sequence[int], pool: int = 4, lr: float = 1e-2
) -> dict[str, Any]:
    """Test accuracy of linear probes per kind (``pretext``, ``random init``, ``raw X1``),
    labelled size n and block (``raw X1`` has one "block": the pixels)."""
    trained, step = load_run(run_dir)
    rule = trained.rule
    if not isinstance(rule, Pretext):
        raise ValueError(f"{run_dir} is a {trained.config.rule.name!r} run, not a pretext run")
    untrained = build_experiment(trained.config, trained.data)  # same seed: the initial weights
    untrained.stack.eval()
    kinds: dict[str, Features] = {
        "pretext": lambda x: rule.block_features(trained.stack, x),
        "random init": lambda x: rule.block_features(untrained.stack, x),
        "raw X1": lambda x: [hide(x, rule.hidden(x)).flatten(1)],
    }
    train, test = trained.data.train, trained.data.test
    if max(sizes) > len(train):
        raise ValueError(f"largest size {max(sizes)} exceeds the {len(train)} training images")
    accuracy: dict[str, dict[str, dict[str, float]]] = {kind: {} for kind in kinds}
    for n in sizes:
        labelled = TensorSplit(train.x[:n], train.y[:n])
        for kind, features in kinds.items():
            scores = fit_probes(
                features, labelled, test, pool=pool, epochs=probe_epochs(n), lr=lr,
                seed=trained.config.seed,
            )  # fmt: skip
            accuracy[kind][str(n)] = {str(k): v for k, v in scores.items()}
    return {
        "run": str(run_dir),
        "step": step,
        "visible": rule.config.visible,
        "dataset": trained.config.data.name,
        "test_examples": len(test),
        "sizes": list(sizes),
        "pool": pool,
        "lr": lr,
        "epochs": {str(n): probe_epochs(n) for n in sizes},
        "threads": torch.get_num_threads(),
        "accuracy": accuracy,
    }


def table(result: dict[str, Any]) -> str:
    """A markdown table: one row per kind and block, one column per n."""
    sizes = [str(n) for n in result["sizes"]]
    lines = ["| features | block | " + " | ".join(f"n = {n}" for n in sizes) + " |"]
    lines.append("|---|---|" + "---|" * len(sizes))
    for kind, per_size in result["accuracy"].items():
        for block in per_size[sizes[0]]:
            cells = " | ".join(f"{100 * per_size[n][block]:.2f}" for n in sizes)
            lines.append(f"| {kind} | {block if kind != 'raw X1' else '-'} | {cells} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Test accuracy against the number of labels: each kind at its best block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = result["sizes"]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for kind, per_size in result["accuracy"].items():
        blocks = list(per_size[str(sizes[0])])
        best = max(blocks, key=lambda b: per_size[str(sizes[-1])][b])
        label = kind if kind == "raw X1" else f"{kind} psi(X1), block {best}"
        ax.plot(sizes, [100 * per_size[str(n)][best] for n in sizes], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images n")
    ax.set_ylabel("linear probe test accuracy (%)")
    ax.set_title(f"{result['dataset']}: X1 = {result['visible']} half", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished pretext run directory")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000, 10000])
    parser.add_argument("--out", type=Path, default=None, help="folder (default: the run's)")
    args = parser.parse_args(argv)
    result = linearity(args.run, args.sizes)
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    (out / "pretext_linearity.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "pretext_linearity.png")
    print(table(result))
    return result


if __name__ == "__main__":
    main()
