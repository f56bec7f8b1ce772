"""train-policy's checks: one-line refusals of options that do not fit together (`check_config`, before
anything is read), of options that do not fit the dataset's action kind (`check_action_kind`), and of a
work directory that is not a train-policy one (`check_work`)."""

from __future__ import annotations

from pathlib import Path

from logo_cli.errors import LogoError
from logo_cli.stages.train_policy_config import CHECKPOINT, METRICS, TrainPolicyConfig
from logo_cli.train.registry import AGENTS, ALGOS, LEARNERS, algos_for, key

NO_REFRESH = (
    "--agent gru: rollout refreshes are not supported (a recurrent policy cannot drive the rollout "
    "generator); use --synthetic BUFFER or --model with --refresh-every 0"
)


def check_config(cfg: TrainPolicyConfig) -> None:
    """The options on their own, before any file is read."""
    if cfg.algo not in ALGOS:
        raise LogoError(f"--algo {cfg.algo}: expected {', '.join(ALGOS[:-1])} or {ALGOS[-1]}")
    if cfg.synthetic is not None and cfg.model is not None:
        raise LogoError("--synthetic / --model: give one, not both")
    if cfg.synthetic is None and cfg.model is None and cfg.mode != "real-only":
        raise LogoError(f"--mode {cfg.mode}: needs --synthetic or --model (or use --mode real-only)")
    for name in ("steps", "batch_size", "eval_every", "eval_episodes", "log_every", "checkpoint_every"):
        if getattr(cfg, name) < 1:
            raise LogoError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: must be at least 1")
    if cfg.model is not None and (cfg.horizon < 1 or cfg.rollout_starts < 1):
        raise LogoError("--horizon / rollout starts: must be at least 1")
    if cfg.corruption.active and cfg.model is None:
        raise LogoError("--obs-noise and the other corruption levels: only with --model")
    _check_numbers(cfg)
    check_recurrent_config(cfg)
    from logo_cli.outputs import check_target
    from logo_cli.tracking import check_logger

    check_logger(cfg.logger)

    check_target(cfg.out, "train-policy", cfg.overwrite)


def _check_numbers(cfg: TrainPolicyConfig) -> None:
    """Float options finite and inside their ranges (NaN / inf would train to NaN weights); network
    sizes bounded before anything is allocated."""
    from logo_cli.checks import MAX_LAYERS, MAX_WIDTH, integer, number

    number("--lr", cfg.lr, lo=0.0, lo_open=True, allow_none=True)
    number("--actor-lr", cfg.actor_lr, lo=0.0, lo_open=True, allow_none=True)
    number("--entropy-alpha", cfg.entropy_alpha, lo=0.0, allow_none=True)
    number("--actor-bc-steps", cfg.actor_bc_steps, lo=0)
    number("--td3bc-alpha", cfg.td3bc_alpha, lo=0.0)
    number("--policy-noise", cfg.policy_noise, lo=0.0)
    number("--noise-clip", cfg.noise_clip, lo=0.0)
    integer("--policy-delay", cfg.policy_delay)
    number("--gamma", cfg.gamma, lo=0.0, hi=1.0)
    number("--synthetic-ratio", cfg.synthetic_ratio, lo=0.0, hi=1.0)
    number("--c", cfg.c, lo=0.0, allow_none=True)
    number("--penalty-lambda", cfg.penalty_lambda, lo=0.0)
    number("--cql-alpha", cfg.cql_alpha, lo=0.0)
    number("--target-tau", cfg.target_tau, lo=0.0, hi=1.0, lo_open=True, allow_none=True)
    number("--rollout-epsilon", cfg.rollout_epsilon, lo=0.0, hi=1.0)
    number("--cfcql-temperature", cfg.cfcql_temperature, lo=0.0)
    integer("--hidden", cfg.hidden, hi=MAX_WIDTH)
    integer("--layers", cfg.layers, hi=MAX_LAYERS)
    integer("--cql-samples", cfg.cql_samples)
    integer("--target-update-every", cfg.target_update_every)
    integer("--refresh-every", cfg.refresh_every, lo=0)
    if cfg.model is not None:
        integer("--bc-steps", cfg.bc_steps)
    if cfg.algo == "cfcql":
        integer("--cfcql-bc-steps", cfg.cfcql_bc_steps)


def check_work(work: Path) -> None:
    """`<out>.partial` is discarded only when it is a train-policy work directory (its own files and
    hidden temporary files only)."""
    from logo_cli.tracking import TRACKER_FILES

    known = {CHECKPOINT, METRICS, "policy.pt", "manifest.json", *TRACKER_FILES}
    try:
        names = {p.name for p in work.iterdir()} if work.is_dir() and not work.is_symlink() else None
    except OSError:
        names = None
    if names is None or any(n not in known and not n.startswith(".") for n in names):
        raise LogoError(
            f"{work}: not a train-policy work directory (holds other files); refusing to remove it"
        )


def check_action_kind(cfg: TrainPolicyConfig, discrete: bool, source: str) -> None:
    """Refuse, in one line, a learner or an option that does not fit the dataset's action kind."""
    _check_options(cfg, discrete, source)
    _check_learner(cfg, discrete, source)


def _check_options(cfg: TrainPolicyConfig, discrete: bool, source: str) -> None:
    if cfg.cql_greedy and (not discrete or cfg.algo != "macql"):
        raise LogoError(
            f"{source}: --cql-greedy is for --algo macql on discrete actions (CFCQL's term already "
            "covers every agent's actions; continuous MACQL samples its policy)"
        )
    if cfg.actor_bc_steps and (discrete or cfg.algo != "macql"):
        raise LogoError(f"{source}: --actor-bc-steps is for --algo macql on continuous actions")
    if discrete:
        if cfg.algo == "td3bc":
            raise LogoError(f"{source}: --algo td3bc needs continuous actions (this dataset's are discrete)")
        for name, value in (("--actor-lr", cfg.actor_lr), ("--entropy-alpha", cfg.entropy_alpha)):
            if value is not None:
                raise LogoError(
                    f"{source}: {name} is for continuous actor-critic learners (discrete actions)"
                )
        return
    if cfg.algo == "cfcql":
        raise LogoError(
            f"{source}: --algo cfcql needs discrete actions; continuous actions train macql, td3bc, "
            "or bc with --mode real-only"
        )
    if cfg.algo == "bc" and cfg.mode != "real-only":
        raise LogoError(
            f"{source}: continuous behaviour cloning trains only --algo bc --mode real-only "
            f"(--mode {cfg.mode}: use --algo macql or td3bc)"
        )
    if cfg.algo == "bc":
        for name, value in (("--actor-lr", cfg.actor_lr), ("--entropy-alpha", cfg.entropy_alpha)):
            if value is not None:
                raise LogoError(f"{source}: {name} is for --algo macql / td3bc, not bc")
    if cfg.algo == "td3bc":
        options = (
            ("--cql-samples", cfg.cql_samples),
            ("--target-update-every", cfg.target_update_every),
            ("--entropy-alpha", cfg.entropy_alpha),
        )
        given = [name for name, value in options if value is not None]
        if given:
            raise LogoError(
                f"{source}: {given[0]} does not apply to --algo td3bc (no CQL term or entropy; its targets "
                "move with each delayed actor update, --policy-delay)"
            )
        if cfg.cql_synthetic == "combo":
            raise LogoError(f"{source}: --cql-synthetic combo: td3bc's BC term takes none or data")


def _check_learner(cfg: TrainPolicyConfig, discrete: bool, source: str) -> None:
    """A learner the registry has for this action kind (the specific refusals below say more)."""
    k = key(cfg.algo, discrete, cfg.agent)
    if k in LEARNERS:
        return
    if (cfg.algo, k[1], "mlp") in LEARNERS:  # only the agent kind has none
        raise LogoError(f"{source}: --agent {cfg.agent}: no {cfg.algo} learner for {k[1]} actions")
    raise LogoError(
        f"{source}: --algo {cfg.algo} needs {'continuous' if discrete else 'discrete'} actions "
        f"(this dataset's are {k[1]}; for them: {', '.join(algos_for(k[1], 'mlp'))})"
    )


def check_recurrent_config(cfg: TrainPolicyConfig) -> None:
    """One-line refusals for what `--agent gru` does not support; ranges of its options.

    Its limits: no rollout refreshes (--model with --refresh-every > 0: the rollout generator acts on
    pools of branches that end and restart at new dataset states, which a policy with memory cannot
    follow); weight mode with the cumulative score only (--weight-by step: per-step weights may grow
    along a branch, which the branch cut of BranchSampler does not reproduce); the learners the
    registry has for GRU agents; TD(λ) replaces --n-step (which must stay 1)."""
    from logo_cli.checks import MAX_WIDTH, integer, number

    if cfg.agent not in AGENTS:
        raise LogoError(f"--agent {cfg.agent}: expected one of {', '.join(AGENTS)}")
    if cfg.agent == "mlp":
        return
    gru = algos_for(agent="gru")
    if cfg.algo not in gru:
        raise LogoError(
            f"--agent gru: needs --algo {' or '.join(gru)} (--algo {cfg.algo} is feed-forward only)"
        )
    if cfg.model is not None and cfg.refresh_every > 0:
        raise LogoError(NO_REFRESH)
    if cfg.mode == "weight" and cfg.weight_by != "cumulative":
        raise LogoError(
            "--agent gru: weight mode needs --weight-by cumulative (per-step weights may grow along a branch)"
        )
    if cfg.n_step != 1:
        raise LogoError(f"--agent gru: uses TD(λ) targets (--td-lambda); --n-step {cfg.n_step} must be 1")
    number("--td-lambda", cfg.td_lambda, lo=0.0, hi=1.0)
    integer("--seq-batch", cfg.seq_batch)
    integer("--rnn-hidden", cfg.rnn_hidden, hi=MAX_WIDTH)
    integer("--burn-in", cfg.burn_in, lo=0)
