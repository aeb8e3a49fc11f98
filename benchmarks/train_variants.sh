#!/usr/bin/env bash
# Train lvt-tiny with the three attention variants on the same synthetic motion clips and the
# same budget; the ffla run is the bundled demo model (lvt_edge/assets/lvt-tiny-motion.*).
# Results: benchmarks/results/attention_variants.md. Usage: benchmarks/train_variants.sh [WORKDIR]
# The three runs go in parallel, one thread each (a 2-core machine trains them in about the time of
# one run at two threads); set PARALLEL=0 to run them one after another.
set -euo pipefail
WORK=${1:-variants}
EPOCHS=${EPOCHS:-20}
mkdir -p "$WORK"
[ -d "$WORK/train" ] || lvt-edge clips synth --out "$WORK/train" --split train --num 2640 --seed 0
[ -d "$WORK/val" ] || lvt-edge clips synth --out "$WORK/val" --split val --num 550 --seed 1
lvt-edge clips info "$WORK/train"
lvt-edge clips info "$WORK/val"
for attention in ffla linear softmax; do
  cmd=(lvt-edge train --model lvt-tiny --attention "$attention" --data "$WORK/train" --val "$WORK/val"
       --epochs "$EPOCHS" --batch-size 8 --lr 2e-3 --seed 0 --reverse-pairs synth --temporal-init-std 1.0
       --no-progress --out "$WORK/$attention")
  if [ "${PARALLEL:-1}" = 1 ]; then
    OMP_NUM_THREADS=1 /usr/bin/time -f "$attention: %e s wall" "${cmd[@]}" > "$WORK/$attention.log" 2>&1 &
  else
    /usr/bin/time -f "$attention: %e s wall" "${cmd[@]}" > "$WORK/$attention.log" 2>&1
  fi
done
wait
tail -n 3 "$WORK"/*.log
# The demo model ships as: cp $WORK/ffla/best.safetensors lvt_edge/assets/lvt-tiny-motion.safetensors
#                          cp $WORK/ffla/best.json        lvt_edge/assets/lvt-tiny-motion.json
