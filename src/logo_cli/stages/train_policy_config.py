"""train-policy's options (`TrainPolicyConfig`), where a run lives while it trains, and the filling in
of the options whose default depends on the learner (`resolve`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from logo_cli.algos.macql import CqlSynthetic
from logo_cli.data.sampler import DEFAULT_TARGET_ESS, SamplerMode, WeightBy
from logo_cli.models.corruption_levels import CorruptionLevels
from logo_cli.train.registry import key, learner_class

# progress(phase, done, total, info); phases: "behaviour" (CFCQL's β), "bc" (first rollout policy),
# "rollout", "train", "eval".
Progress = Callable[[str, int, int, dict], None]
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
# Config fields that may change between an interrupted run and its resumption.
# The tracker is among them: how a run is watched does not change what it computes.
RESUMABLE_CHANGES = ("steps", "resume", "overwrite", "device", "allow_incomplete", "logger")
Algo = str  # one of train/registry.ALGOS


@dataclass(frozen=True)
class TrainPolicyConfig(CorruptionLevels):
    data: Path  # offline dataset (.h5): the real transitions
    out: Path  # run directory to write (policy.pt, manifest.json, metrics.jsonl)
    synthetic: Path | None = None  # zarr synthetic buffer, used as is
    model: Path | None = None  # or: pretrain run whose world model generates rollouts in memory
    algo: Algo = "macql"  # policy learner
    mode: SamplerMode = "weight"  # synthetic sampling: weight (LOGO), penalty, uniform, real-only
    synthetic_ratio: float = 0.5  # fraction of each batch drawn from synthetic data
    c: float | None = None  # truncation C of P_u = clip(C - u, 0, C); None: 0.9 quantile of the score
    temperature: float | None = None  # τ of the weights exp(P_u / τ); None: solved for target_ess
    target_ess: float = DEFAULT_TARGET_ESS  # effective sample size (fraction) the solved τ reaches
    weight_by: WeightBy = "cumulative"  # weight-mode score: branch-accumulated or per-step uncertainty
    penalty_lambda: float = 1.0  # λ of the penalty mode's reward r - λu
    steps: int = 10_000  # gradient steps
    batch_size: int = 256  # transitions per gradient step
    lr: float | None = None  # Adam learning rate (critic's for actor-critic); None: by learner, see resolve
    actor_lr: float | None = None  # continuous learners: the actor's (and SAC temperature's) learning rate
    gamma: float = 0.99  # discount
    cql_alpha: float = 1.0  # weight of the CQL term
    cql_samples: int | None = (
        None  # CQL samples per state (discrete: 32 joint actions; continuous: 10 per source)
    )
    cql_include_data: bool = True  # the data joint action is one of the CQL logsumexp terms
    cql_greedy: bool = False  # MACQL: the online greedy joint action is one more logsumexp term
    cql_synthetic: CqlSynthetic = "none"  # CQL on synthetic rows: "data", "combo" (COMBO) or "none"
    cfcql_temperature: float = 5.0  # CFCQL: τ of the agent weights softmax_i(τ · KL(μ_i ‖ β_i))
    cfcql_bc_steps: int = 2000  # CFCQL: BC steps fitting the behaviour policy β before Q training
    n_step: int = 1  # steps of the TD target (over real episodes and synthetic branches)
    normalise_state: bool = True  # standardise the mixer's state input with the real data's statistics
    target_update_every: int | None = None  # steps between target updates (discrete 200, continuous 1)
    target_tau: float | None = (
        None  # Polyak factor of a target update (discrete 1: hard copy; continuous 0.005)
    )
    entropy_alpha: float | None = None  # continuous MA-CQL: fixed SAC temperature; None: auto-tuned
    actor_bc_steps: int = 0  # continuous MA-CQL: first steps whose actor loss is behaviour cloning
    td3bc_alpha: float = 2.5  # MA-TD3+BC: α of λ = α / mean |Q|
    policy_noise: float = 0.2  # MA-TD3+BC: std of the target policy smoothing noise
    noise_clip: float = 0.5  # MA-TD3+BC: clip of that noise
    policy_delay: int = 2  # MA-TD3+BC: critic steps per actor and target update
    hidden: int = 128  # agent network width
    layers: int = 2  # agent network hidden layers
    eval_env: str | None = None  # simulator for periodic evaluation (e.g. smax:3m); None: no evaluation
    eval_every: int = 2000  # steps between evaluations (and one at the end)
    eval_episodes: int = 32  # episodes per evaluation
    refresh_every: int = (
        5000  # with --model: steps between rollout refreshes by the current policy (0: never)
    )
    horizon: int = 15  # with --model: rollout horizon
    rollout_starts: int = 2000  # with --model: branches per refresh, each from a dataset state
    rollout_batch: int = 4096  # with --model: branches advanced together
    rollout_epsilon: float = 0.1  # with --model: ε of the ε-greedy MACQL policy driving refreshes
    termination: str = "sample"  # with --model: branch ends drawn from p, or "threshold" (p > 0.5)
    bc_steps: int = 2000  # with --model: BC steps for the first rollout policy
    log_every: int = 100  # steps between metrics.jsonl lines
    checkpoint_every: int = 1000  # steps between checkpoints
    seed: int = 0  # seeds networks, sampling, rollouts and evaluation
    device: str = "cpu"  # resolved torch device
    resume: bool = True  # continue from <out>.partial/checkpoint.pt when present
    overwrite: bool = False  # replace an existing <out>
    allow_incomplete: bool = False  # use the prefix of an interrupted (incomplete) --synthetic buffer
    logger: str = "none"  # experiment tracker: none, tensorboard or wandb (see logo_cli.tracking)
    # Recurrent agents (train/learners/recurrent.py): "gru" trains MACQL / CFCQL with GRU agents on
    # batches of `seq_batch` whole episodes (and synthetic branches, whose GRU state starts from up to
    # `burn_in` real steps before them) with TD(`td_lambda`) targets.
    agent: str = "mlp"
    td_lambda: float = 0.6
    seq_batch: int = 32
    rnn_hidden: int = 64
    burn_in: int = 20


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def resolve(cfg: TrainPolicyConfig, discrete: bool) -> TrainPolicyConfig:
    """The config with the options left None set to the learner's defaults (`Learner.defaults`: the
    discrete learners share theirs; the continuous actor-critics use their references')."""
    values = learner_class(key(cfg.algo, discrete, cfg.agent)).defaults(cfg)
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if getattr(cfg, k) is None})
