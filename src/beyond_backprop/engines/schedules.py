"""What one stage does in one training step, for each schedule of the StageEngine.

Every schedule runs the stage's blocks through ``engines.step`` (the same code as the
LocalEngine) and differs only in which messages it waits for:

- ``naive``: one batch in the pipeline at a time. Activations go up; then the backward
  messages (the gradient, broadcasts, or an empty "done" message) come down stage by stage
  before anyone starts the next batch. Serves every wiring.
- ``pipelined``: for forward-only wirings (backward ``none``: greedy, DGL, GIM). A stage sends
  its output up and goes on with its own update and the next batch without waiting for any
  stage above, so stage k works on batch t while stage k+1 works on batch t-1. Each block's
  update depends only on its input and its own state, and the input of block k+1 for batch t
  is computed by block k's parameters before block k's update of step t, as in the
  LocalEngine's sync loop: the parameters come out bitwise the same (same seed, pinned
  threads, no random layers, whose draws would come from a different generator per rank).
- ``async``: for ``stale_ok`` wirings (DGL): see ``engines.async_stage``.
- ``gpipe``: for gradient wirings (``backprop``, ``fa``): the batch is split into micro-batches;
  all forwards, then all backwards in reverse order, gradients accumulated, one update. Each
  micro-batch's loss is weighted by its share of the batch, so the gradients equal one-process
  back-propagation of the batch's mean loss (up to float summation order).

- ``decoupled``: for ``delayed_gradient`` wirings (DNI): a stage's top block learns at once
  from the rule's estimate of its output gradient (the synthetic gradient) and the stage
  sends what its lowest block back-propagated down, without waiting; the true target of
  step t comes from the stage above while this stage runs step t+1, and the rule learns from
  it then (``late_terms``: DNI's synthesizer regression), in the same optimizer step as step
  t+1's update. So no stage ever waits for a backward pass above it (update unlocking); the
  synthesizer learns one step late, from its parameters at that time. Under a ``synthetic``
  forward wiring (DNI's synthetic inputs) every stage but the first also learns before its
  input arrives (forward unlocking): its blocks run on the rule's synthetic input; after the
  update the stage receives the real input, passes the real output up, and the rule learns
  from the real input at the next step (``late_terms``: the input synthesizer's regression).

For ``output_error`` wirings (DFA) the top stage sends its broadcast straight to every lower
stage, which then updates without waiting for any backward pass in between.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from beyond_backprop.engines.async_stage import asynchronous
from beyond_backprop.engines.stage import Stage, Terms
from beyond_backprop.engines.step import Late
from beyond_backprop.rules.base import Batch, Wiring


def naive(stage: Stage, batch: Batch, step: int, epoch: int) -> Terms:
    """One batch at a time through the whole pipeline (serves every wiring)."""
    if not stage.runs:
        return {}
    pairs = stage.forward(batch.x, batch)
    broadcast_from_top = stage.rule.wiring.backward == "output_error"
    inbox: dict[str, torch.Tensor] = {}
    if stage.learns and not stage.top:
        source = stage.top_rank if broadcast_from_top else stage.rank + 1
        inbox = stage.channel.recv_named(source)
    terms, down = stage.backward(pairs, batch, step, epoch, inbox)
    if broadcast_from_top:
        if stage.top:  # straight to every lower stage: none waits for another's backward
            for rank in range(stage.rank):
                if stage.partition[rank].stop > stage.active.start:
                    stage.channel.send_named(down, rank)
    elif stage.below_learns:
        stage.channel.send_named(down, stage.rank - 1)
    return terms


def pipelined(stage: Stage, batch: Batch, step: int, epoch: int) -> Terms:
    """Send up and go on: no stage waits for a stage above it (forward-only wirings)."""
    if not stage.runs:
        return {}
    pairs = stage.forward(batch.x, batch)
    terms, _ = stage.backward(pairs, batch, step, epoch, {})
    return terms


def decoupled(stage: Stage, batch: Batch, step: int, epoch: int) -> Terms:
    """Update now from the rule's own gradient estimate; learn from the real one next step."""
    if not stage.runs:
        return {}
    unlocked = stage.unlocked
    pairs = stage.forward_synthetic(batch) if unlocked else stage.forward(batch.x, batch)
    terms, down = stage.backward(pairs, batch, step, epoch, {}, synthetic_first=unlocked)
    if stage.below_learns:
        stage.channel.send_named(down, stage.rank - 1)
    terms.update(stage.learn_late())  # step t-1's target, sent while this stage ran step t
    if stage.learns and not stage.top:
        stage.late = Late.of(stage.blocks.stop - 1, pairs[-1], batch, step, epoch)
    return terms


def gpipe(stage: Stage, batch: Batch, step: int, epoch: int) -> Terms:
    """Micro-batches: all forwards, then all backwards in reverse, one accumulated update."""
    if not stage.runs:
        return {}
    n = batch.x.shape[0]
    parts = min(stage.microbatches, n)
    xs, ys = torch.tensor_split(batch.x, parts), torch.tensor_split(batch.y, parts)
    # a rule's extra views (e.g. the targets of a reconstruction rule) are split like x
    views = [torch.tensor_split(v, parts) for v in batch.views]
    micro = [Batch(xs[m], ys[m], tuple(v[m] for v in views)) for m in range(parts)]
    saved = [stage.forward(m.x, m) for m in micro]
    terms: Terms = {}
    for m in reversed(range(parts)):
        inbox = stage.channel.recv_named(stage.rank + 1) if stage.learns and not stage.top else {}
        share = micro[m].x.shape[0] / n
        part_terms, down = stage.backward(saved[m], micro[m], step, epoch, inbox, scale=share)
        saved[m] = []  # free this micro-batch's graph as soon as it is done
        for key, value in part_terms.items():
            terms[key] = terms.get(key, 0.0) + share * value
        if stage.below_learns:
            stage.channel.send_named(down, stage.rank - 1)
    return terms


StepFunction = Callable[[Stage, Batch, int, int], Terms]
SCHEDULES: dict[str, tuple[StepFunction, Callable[[Wiring], bool], str]] = {
    "naive": (naive, lambda w: True, "any wiring"),
    "pipelined": (pipelined, lambda w: w.backward == "none", "wirings with backward 'none'"),
    "gpipe": (gpipe, lambda w: w.backward == "gradient", "wirings with backward 'gradient'"),
    "async": (asynchronous, lambda w: w.stale_ok, "wirings with stale_ok"),
    "decoupled": (
        decoupled,
        lambda w: w.backward == "delayed_gradient",
        "wirings with backward 'delayed_gradient'",
    ),
}


def check_schedule(
    schedule: str, rule_name: str, wiring: Wiring, rules: dict[str, Wiring]
) -> str | None:
    """Why ``schedule`` cannot serve ``rule_name`` (naming the rules it can serve), or None."""
    _, serves, what = SCHEDULES[schedule]
    if serves(wiring):
        return None
    able = sorted(name for name, w in rules.items() if serves(w))
    return (
        f"engine.schedule: {schedule!r} serves {what}, but rule {rule_name!r} has backward "
        f"{wiring.backward!r}; rules it serves: {', '.join(able) or 'none'}; "
        f"schedules for {rule_name!r}: "
        f"{', '.join(s for s, (_, ok, _) in SCHEDULES.items() if ok(wiring))}"
    )
