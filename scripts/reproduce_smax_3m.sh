#!/usr/bin/env bash
# Reproduce the LOGO policy comparison on SMAX 3m (docs/results.md) with `logo sweep`.
# The grid (qualities, methods, seeds, budgets, where the report goes) is scripts/grids/smax_3m.toml;
# the sweep runs it as a graph of stage tasks on Ray (docs/scale-out.md), skips finished tasks on a
# rerun and writes the results table, figure and JSON at the end.
#   bash scripts/reproduce_smax_3m.sh                           # on this machine, every core
#   ADDRESS=auto ROOT=/shared/sweep bash scripts/reproduce_smax_3m.sh   # on a Ray cluster
#   GRID=my_grid.toml bash scripts/reproduce_smax_3m.sh --dry-run       # extra options pass through
# Needs Ray: pip install "logo-cli[cluster]".
set -euo pipefail
cd "$(dirname "$0")/.."

GRID=${GRID:-scripts/grids/smax_3m.toml}   # the grid file
ROOT=${ROOT:-runs/sweep/smax_3m}           # artifacts and logs (git-ignored under runs/)
ADDRESS=${ADDRESS:-}                       # a Ray cluster (auto, ray://host:port); empty: local Ray
JOBS=${JOBS:-}                             # local Ray's CPUs (tasks side by side); empty: every core
# torch/OpenMP threads per task: 1 is fastest on a busy CPU (each task also reserves one Ray CPU)
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}

args=(--root "$ROOT" --report)
[ -n "$ADDRESS" ] && args+=(--address "$ADDRESS")
[ -n "$JOBS" ] && args+=(--num-cpus "$JOBS")
# shellcheck disable=SC2086  # LOGO may be a command with arguments (python -m logo_cli)
exec ${LOGO:-logo} sweep "$GRID" "${args[@]}" "$@"
