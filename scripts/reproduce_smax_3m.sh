#!/usr/bin/env bash
# Reproduce the LOGO policy comparison on SMAX 3m (docs/results.md):
#   collect each dataset quality -> pretrain world models per quality and seed -> per quality x seed x
#   method: train-policy (synthetic rollouts generated in memory from the policy being trained and
#   refreshed every REFRESH_EVERY steps, or with SYNTHETIC=buffer a fixed BC-driven zarr buffer),
#   then evaluate.
# Methods: logo-weight (MACQL + LOGO rollouts, weighted sampling), logo-penalty (r - lambda*u),
#          logo-uniform (synthetic sampled uniformly), global-weight / ensemble-weight (the same
#          weighting on the global / ensemble world model's rollouts), macql (real data only), bc.
# Quality "small" is the shipped 300-episode medium sample (datasets/smax_3m_medium.h5).
# Every step skips work whose artifact already exists, so a broken run continues where it stopped
# (unfinished pretrain / train-policy runs resume from their checkpoints). Changing a parameter
# does not invalidate finished artifacts: use a new OUT for a new configuration.
#   bash scripts/reproduce_smax_3m.sh
#   QUALITIES=medium POLICY_STEPS=5000 JOBS=2 bash scripts/reproduce_smax_3m.sh
#   OUT=runs/alpha5 ARTIFACTS=runs/reproduce_smax_3m TRAIN_ARGS="--cql-alpha 5" bash scripts/reproduce_smax_3m.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/reproduce_smax_3m}          # everything goes here (git-ignored under runs/)
ARTIFACTS=${ARTIFACTS:-$OUT}                # datasets, world models and rollouts: another run's OUT
                                            # reuses them (e.g. a TRAIN_ARGS variant of the policies)
TAG=${TAG:-$(basename "$OUT")}              # names this run's block in RESULTS_MD and its figure
RESULTS_MD=${RESULTS_MD:-docs/results.md}   # markdown page that gets the results table
FIGURE=${FIGURE:-docs/figures/$TAG.png}     # grouped bar chart of the results
RESULTS_JSON=${RESULTS_JSON:-docs/results/smax_3m.json}   # per quality x method x seed, with the commit
ENV=${ENV:-smax:3m}                         # simulator:scenario (collection and evaluation)
BEHAVIOUR=${BEHAVIOUR:-datasets/behaviour/smax_3m}   # behaviour ladder that defines the qualities
SEEDS=${SEEDS:-"0 1 2"}                     # seeds of world model, rollout, policy and evaluation
QUALITIES=${QUALITIES:-"medium expert medium_replay mixed small"}
METHODS=${METHODS:-"logo-weight logo-penalty logo-uniform global-weight ensemble-weight macql bc"}
SYNTHETIC=${SYNTHETIC:-model}               # model: rollouts in memory from the trained policy; buffer: fixed zarr
REFRESH_EVERY=${REFRESH_EVERY:-2000}        # SYNTHETIC=model: policy steps between rollout refreshes
EPISODES=${EPISODES:-2000}                  # episodes per collected dataset
COLLECT_SEED=${COLLECT_SEED:-0}             # one dataset per quality, shared by all seeds
WM_STEPS=${WM_STEPS:-3000}                  # world-model training steps (logo pretrain --max-steps)
HORIZON=${HORIZON:-15}                      # rollout horizon (the paper's best)
ROLLOUT_STARTS=${ROLLOUT_STARTS:-5000}      # rollout branches, each from a dataset state
POLICY_STEPS=${POLICY_STEPS:-10000}         # train-policy gradient steps (MACQL and BC alike)
EVAL_EPISODES=${EVAL_EPISODES:-200}         # evaluation episodes per policy
EVAL_SEED=${EVAL_SEED:-10000}               # evaluation env seed = EVAL_SEED + seed (paired across methods)
TRAIN_ARGS=${TRAIN_ARGS:-}                  # extra options for every train-policy run (e.g. "--cql-alpha 2")
JOBS=${JOBS:-1}                             # steps run side by side (pretrain, rollout, train+evaluate)
THREADS=${THREADS:-1}                       # torch/OpenMP threads per process (1 is fastest on a busy CPU)
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
# JAX's persistent compilation cache: every evaluate is a fresh process that compiles the same
# SMAX step; from the cache it starts in about half the time (34 s -> 16 s measured on 2 cores).
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$ARTIFACTS/jax_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0

LOGS=$OUT/logs
STEPLOG=$LOGS/steps.tsv                     # one line per step: time, kind, name, seconds, status
mkdir -p "$ARTIFACTS"/{data,wm,rollouts} "$OUT"/{policies,eval} "$LOGS"
rm -f "$LOGS/FAILED"
[ -f "$STEPLOG" ] || printf 'time\tkind\tname\tseconds\tstatus\n' >"$STEPLOG"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }  # milliseconds -> seconds
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
log_step() { printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$1" "$2" "$3" "$4" >>"$STEPLOG"; }

# run_step NAME ARTIFACT-TEST COMMAND...: skip if the test passes, else run the command with its
# output in logs/NAME.log and log its wall time. A failure marks logs/FAILED (parallel steps).
run_step() {
  local name=$1 test=$2
  shift 2
  if eval "$test"; then
    say "skip  $name (done)"
    log_step step "$name" 0 skipped
    return 0
  fi
  say "start $name: $*"
  local t0 rc=0 dt
  t0=$(now_ms)
  "$@" >"$LOGS/$name.log" 2>&1 || rc=$?
  dt=$(secs $(($(now_ms) - t0)))
  if [ "$rc" -ne 0 ]; then
    log_step step "$name" "$dt" "failed:$rc"
    say "FAIL  $name (exit $rc, ${dt%.*} s): $(tail -n 1 "$LOGS/$name.log")"
    echo "$name" >>"$LOGS/FAILED"
    return "$rc"
  fi
  log_step step "$name" "$dt" ran
  say "done  $name in ${dt%.*} s"
}

# spawn: run a step in the background, at most JOBS at once; barrier: wait for all, stop on failure.
spawn() {
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  "$@" &
}
barrier() {
  wait
  if [ -f "$LOGS/FAILED" ]; then
    say "stopping: failed steps: $(tr '\n' ' ' <"$LOGS/FAILED")(see $LOGS/<step>.log); rerun to continue"
    exit 1
  fi
}
# Background steps ignore SIGINT (no job control in a script): on Ctrl-C, stop the commands our
# step subshells started (by parent pid), then log this session's wall time on exit.
stop_children() {
  local p
  for p in $(jobs -p); do pkill -TERM -P "$p" 2>/dev/null || true; done
  exit 130
}
SESSION_LOGGED=0
session_end() {
  local rc=$?
  [ "$SESSION_LOGGED" -eq 1 ] && return
  log_step session run "$(secs $(($(now_ms) - T0)))" "$([ "$rc" -eq 0 ] && echo "done" || echo "stopped:$rc")"
}
trap stop_children INT TERM

zarr_complete() { [ -f "$1/zarr.json" ] && grep -q '"complete": true' "$1/zarr.json"; }
# wm_kind METHOD: the world model a method learns from (none for the real-data-only methods).
wm_kind() { case $1 in logo-*) echo logo ;; global-*) echo global ;; ensemble-*) echo ensemble ;; *) echo none ;; esac; }
synthetic() { [ "$(wm_kind "$1")" != none ]; }

# train_args METHOD QUALITY SEED: the train-policy options that make a method.
train_args() {
  local kind syn
  kind=$(wm_kind "$1")
  if [ "$SYNTHETIC" = buffer ]; then
    syn="--synthetic $ARTIFACTS/rollouts/$2-$kind-s$3.zarr"
  else
    syn="--model $ARTIFACTS/wm/$2-$kind-s$3 --refresh-every $REFRESH_EVERY --horizon $HORIZON"
  fi
  case $1 in
    logo-weight | global-weight | ensemble-weight) echo "--algo macql $syn --mode weight" ;;
    logo-penalty) echo "--algo macql $syn --mode penalty" ;;
    logo-uniform) echo "--algo macql $syn --mode uniform" ;;
    macql) echo "--algo macql --mode real-only" ;;
    bc) echo "--algo bc --mode real-only" ;;
    *) echo "unknown method $1 (known: logo-weight logo-penalty logo-uniform global-weight ensemble-weight macql bc)" >&2
       return 1 ;;
  esac
}

policy_and_eval() {  # METHOD QUALITY SEED
  local m=$1 q=$2 s=$3 args
  args=$(train_args "$m" "$q" "$s")
  local pol=$OUT/policies/$q-$m-s$s ev=$OUT/eval/$q-$m-s$s.json
  # shellcheck disable=SC2086  # args and TRAIN_ARGS are option lists
  run_step "train-$q-$m-s$s" "[ -f '$pol/policy.pt' ]" \
    logo train-policy --data "$ARTIFACTS/data/smax_3m_$q.h5" $args --steps "$POLICY_STEPS" \
    --seed "$s" --device cpu --out "$pol" $TRAIN_ARGS || return 0
  run_step "evaluate-$q-$m-s$s" "[ -f '$ev' ]" \
    logo evaluate --policy "$pol" --env "$ENV" --episodes "$EVAL_EPISODES" \
    --seed $((EVAL_SEED + s)) --device cpu --json --out "$ev" || return 0
}

for m in $METHODS; do train_args "$m" x 0 >/dev/null; done
T0=$(now_ms)
trap session_end EXIT
say "reproduce $ENV into $OUT: qualities [$QUALITIES] seeds [$SEEDS] methods [$METHODS]"
say "episodes $EPISODES, world-model steps $WM_STEPS, policy steps $POLICY_STEPS," \
  "rollout starts $ROLLOUT_STARTS, eval episodes $EVAL_EPISODES, jobs $JOBS"
python - "$OUT/params.json" <<EOF
import json, subprocess, sys
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
params = dict(env="$ENV", behaviour="$BEHAVIOUR", seeds="$SEEDS".split(), qualities="$QUALITIES".split(),
              methods="$METHODS".split(), episodes=$EPISODES, collect_seed=$COLLECT_SEED, wm_steps=$WM_STEPS,
              horizon=$HORIZON, rollout_starts=$ROLLOUT_STARTS, policy_steps=$POLICY_STEPS,
              eval_episodes=$EVAL_EPISODES, eval_seed=$EVAL_SEED, train_args="$TRAIN_ARGS", jobs=$JOBS,
              synthetic="$SYNTHETIC", refresh_every=$REFRESH_EVERY,
              threads=$THREADS, artifacts="$ARTIFACTS", commit=commit)
json.dump(params, open(sys.argv[1], "w"), indent=2)
# Every invocation's part of the grid (qualities x methods), so the aggregation knows which cells
# were asked for when several invocations filled different parts of one OUT.
plans_path = sys.argv[1].replace("params.json", "plans.json")
try:
    plans = json.load(open(plans_path))
except FileNotFoundError:
    plans = []
plan = dict(qualities=params["qualities"], methods=params["methods"])
if plan not in plans:
    plans.append(plan)
json.dump(plans, open(plans_path, "w"), indent=2)
EOF

for q in $QUALITIES; do
  data=$ARTIFACTS/data/smax_3m_$q.h5
  if [ "$q" = small ]; then  # the shipped sample, not collected
    run_step "collect-$q" "[ -f '$data' ]" cp datasets/smax_3m_medium.h5 "$data"
    continue
  fi
  run_step "collect-$q" "[ -f '$data' ]" \
    logo collect --env "$ENV" --quality "$q" --episodes "$EPISODES" --seed "$COLLECT_SEED" \
    --behaviour "$BEHAVIOUR" --device cpu --out "$data"
done

# One world model per quality and seed: the seed-to-seed spread then includes the world model's.
# The real-data-only methods need no world model, so they queue behind the pretrain runs and fill
# the job slots those leave free. Seeds outermost, so an early stop leaves whole seeds.
KINDS=""
for m in $METHODS; do
  k=$(wm_kind "$m")
  if [ "$k" != none ] && [[ " $KINDS " != *" $k "* ]]; then KINDS="$KINDS $k"; fi
done
NEED_WM=0
[ -n "$KINDS" ] && NEED_WM=1
for k in $KINDS; do
  for q in $QUALITIES; do
    for s in $SEEDS; do
      wm=$ARTIFACTS/wm/$q-$k-s$s
      spawn run_step "pretrain-$q-$k-s$s" "[ -f '$wm/model.pt' ] && [ -f '$wm/manifest.json' ]" \
        logo pretrain --data "$ARTIFACTS/data/smax_3m_$q.h5" --kind "$k" --max-steps "$WM_STEPS" \
        --seed "$s" --device cpu --out "$wm"
    done
  done
done
for s in $SEEDS; do
  for q in $QUALITIES; do
    for m in $METHODS; do
      if ! synthetic "$m"; then spawn policy_and_eval "$m" "$q" "$s"; fi
    done
  done
done
barrier

if [ "$NEED_WM" -eq 1 ]; then
  if [ "$SYNTHETIC" = buffer ]; then
    for k in $KINDS; do
      for q in $QUALITIES; do
        for s in $SEEDS; do
          zarr=$ARTIFACTS/rollouts/$q-$k-s$s.zarr
          spawn run_step "rollout-$q-$k-s$s" "zarr_complete '$zarr'" \
            logo rollout --model "$ARTIFACTS/wm/$q-$k-s$s" --data "$ARTIFACTS/data/smax_3m_$q.h5" \
            --horizon "$HORIZON" --n-starts "$ROLLOUT_STARTS" --seed "$s" --device cpu --overwrite --out "$zarr"
        done
      done
    done
    barrier
  fi
  for s in $SEEDS; do
    for q in $QUALITIES; do
      for m in $METHODS; do
        if synthetic "$m"; then spawn policy_and_eval "$m" "$q" "$s"; fi
      done
    done
  done
  barrier
fi

log_step session run "$(secs $(($(now_ms) - T0)))" "done"
SESSION_LOGGED=1
say "all steps done in $((($(now_ms) - T0) / 1000)) s; aggregating"
python scripts/aggregate_results.py --out "$OUT" --markdown "$RESULTS_MD" --figure "$FIGURE" --tag "$TAG" \
  --results-json "$RESULTS_JSON"
