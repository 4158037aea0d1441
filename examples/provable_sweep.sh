#!/bin/bash
# Sample-size sweep on the 3-level generative model: provable vs backprop on the same shapes.
# Every size gets about the same number of steps: E = 10000 / N fit epochs per layer for
# provable, 3E + 2 epochs for backprop. Run it under the heavy-work lock:
#   examples/provable_sweep.sh [LOG_ROOT]
set -euo pipefail
root=${1:-runs/provable-sweep}
for n in 250 500 1000 2000 5000; do
  e=$((10000 / n))
  b=$((3 * e + 2))
  .venv/bin/bbp train --config configs/hierarchical_digits/provable.yaml \
    --set data.train_limit=$n --set train.epochs=$e --set train.eval_every=$e \
    --set name=hd-provable-n$n --set log.root="$root" --set log.progress=false
  .venv/bin/bbp train --config configs/hierarchical_digits/backprop.yaml \
    --set data.train_limit=$n --set train.epochs=$b --set train.eval_every=$b \
    --set name=hd-backprop-n$n --set log.root="$root" --set log.progress=false
done
