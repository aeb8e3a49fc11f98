#!/usr/bin/env bash
# The attention-variant table (benchmarks/results/attention_variants.md): lvt-tiny with each
# attention (ffla, linear, softmax) trained from scratch on the same synthetic motion clips with
# the same budget, once per seed in SEEDS. (The bundled demo models: benchmarks/train_causal.sh.)
#
# Usage: benchmarks/train_variants.sh [WORKDIR]       (run from the repository root)
# EPOCHS (default 12) and SEEDS (default "0 1 2") set the budget. Runs go two at a time with one
# thread each (a 2-core machine); a run whose folder already exists is kept, delete it to redo it.
set -euo pipefail
WORK=${1:-variants}
EPOCHS=${EPOCHS:-12}
SEEDS=${SEEDS:-0 1 2}
mkdir -p "$WORK"
[ -d "$WORK/train" ] || lvt-edge clips synth --out "$WORK/train" --split train --num 2640 --seed 0
[ -d "$WORK/val" ] || lvt-edge clips synth --out "$WORK/val" --split val --num 550 --seed 1
lvt-edge clips info "$WORK/train"
lvt-edge clips info "$WORK/val"

run() {  # run NAME ARGS...: one training run, logged to WORK/NAME.log, at most two at a time
  local name=$1; shift
  [ -e "$WORK/$name" ] && { echo "keeping $WORK/$name"; return; }
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
  OMP_NUM_THREADS=1 /usr/bin/time -f "$name: %e s wall" lvt-edge train --data "$WORK/train" --val "$WORK/val" \
    --epochs "$EPOCHS" --batch 8 --reverse-pairs synth -q --out "$WORK/$name" "$@" \
    > "$WORK/$name.log" 2>&1 &
}

for seed in $SEEDS; do
  for attention in ffla linear softmax; do
    run "$attention-s$seed" --model lvt-tiny --attention "$attention" --lr 2e-3 --seed "$seed" --temporal-init-std 1.0
  done
done
wait
for log in "$WORK"/*.log; do
  [ -f "${log%.log}/train_log.json" ] || continue
  printf '%s: best val top-1 %s\n' "$(basename "$log" .log)" \
    "$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["best_val_top1"])' "${log%.log}/train_log.json")"
done
