#!/usr/bin/env bash
# The recipe search of experiments/fish_frames/README.md: each variant over five seeds on the time
# split, then the best ones on the k-fold blocks and on the full-HD frames. Run from the repository
# root; figures land in $OUT/<variant>_<protocol>.json and .log (run.py's output).
set -euo pipefail
OUT=${OUT:-outputs/fish_variants}
SEEDS=${SEEDS:-1,2,3,4,5}
mkdir -p "$OUT"
run() {  # run <name> <protocol> [overrides...]
  local name=$1 protocol=$2; shift 2
  python experiments/fish_frames/run.py --protocol "$protocol" --seeds "$SEEDS" --json "$OUT/${name}_${protocol}.json" \
    --experiment fish_frames_v0 "$@" > "$OUT/${name}_${protocol}.log" 2>&1
  tail -1 "$OUT/${name}_${protocol}.log"
}
NOCROP='data.augment.crop_scale=[1.0,1.0]'
STEPS='data.batch_size=8 trainer.max_epochs=16'
for protocol in ${PROTOCOLS:-time}; do
  run v0_before "$protocol"
  run v1_nocrop "$protocol" "$NOCROP"
  run v2_nocrop_steps "$protocol" "$NOCROP" $STEPS
  run v3_enhance "$protocol" "$NOCROP" $STEPS 'data.preprocess=[enhance]'
  run v4_time_valid "$protocol" "$NOCROP" $STEPS data.split=time
done
