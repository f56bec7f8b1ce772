#!/usr/bin/env bash
# The main job: the whole LOGO pipeline on the embedded default (SMAX 3m, the shipped medium sample),
# in minutes on a CPU. A rerun continues: each command reports its finished artifact `up to date`
# (an interrupted one resumes), and refuses one made with other settings (pass --overwrite there).
#   bash scripts/quickstart.sh            # runs into runs/quickstart
#   OUT=/tmp/qs STEPS=500 bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-datasets/smax_3m_medium.h5}   # shipped sample (see datasets/cards/)
ENV=${ENV:-smax:3m}
OUT=${OUT:-runs/quickstart}
SEED=${SEED:-0}
WM_STEPS=${WM_STEPS:-3000}                 # world-model training steps
STEPS=${STEPS:-3000}                       # policy training steps
STARTS=${STARTS:-2000}                     # rollout branches (horizon 15 each)
EPISODES=${EPISODES:-100}                  # evaluation episodes

mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "inspect the dataset"
logo inspect "$DATA"

step "pretrain the LOGO world model"
logo pretrain --data "$DATA" --kind logo --steps "$WM_STEPS" --seed "$SEED" --out "$OUT/world_model"

step "roll out 15-step synthetic branches with per-sample uncertainty"
logo rollout --model "$OUT/world_model" --data "$DATA" --horizon 15 --n-starts "$STARTS" \
    --seed "$SEED" --out "$OUT/synthetic.zarr"
logo inspect "$OUT/synthetic.zarr"

step "train MACQL on real + uncertainty-weighted synthetic data"
logo train-policy --data "$DATA" --synthetic "$OUT/synthetic.zarr" --mode weight --steps "$STEPS" \
    --seed "$SEED" --out "$OUT/policy"

step "evaluate the policy in the simulator"
logo evaluate --policy "$OUT/policy" --env "$ENV" --episodes "$EPISODES" --seed "$SEED" --out "$OUT/evaluate.json"

step "calibrate: uncertainty against true error"
logo calibrate --model "$OUT/world_model" --data "$DATA" --out "$OUT/calibrate"

step "summary"
python scripts/summarize_quickstart.py "$OUT"
