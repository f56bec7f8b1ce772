"""train-policy: MACQL, CFCQL (or BC) on real + synthetic transitions, with evaluation and exact resume.

Synthetic data comes from a zarr buffer used as is (--synthetic), or from a world model rolled out in
memory (--model) with the rollout stage's generator: first driven by behaviour cloning of the dataset,
then, every `refresh_every` steps, by the current policy (ε-greedy over Q for MACQL and CFCQL), as
MBPO/MOPO do. CFCQL first fits its behaviour policy by BC on the real data (kept in the checkpoint).
While training, the run lives in `<out>.partial/` (checkpoint.pt + metrics.jsonl); it is renamed to
`<out>` only when complete, so `<out>` is never half-written and an interrupted run resumes from its
last checkpoint. The checkpoint holds everything random or learned (networks, target networks,
optimiser, step, sampler / CQL / rollout RNG states, the policy that made the current synthetic
buffer, eval history), so a resumed run ends with the same weights as an uninterrupted one.

`<out>` is locked for the whole run (a second run into it gets one line), checked again just before
the finished `<out>.partial/` is swapped in, and `--overwrite` replaces only a train-policy run. A
loss that turns NaN or inf stops training with one line and no checkpoint is written with
non-finite weights, so `<out>.partial/checkpoint.pt` stays the last good one.

A continuous-action dataset (MaMuJoCo) trains `--algo macql` (MA-CQL with per-agent SAC actors and
critics, algos/macql_continuous.py; policy mode "tanh_gaussian"), `--algo td3bc` (MA-TD3+BC,
algos/td3bc.py; mode "deterministic"), both in every sampler mode and with in-memory refreshes driven
by their own actor, or `--algo bc --mode real-only` (the Gaussian BC of algos/gaussian_bc.py, mode
"gaussian"). CFCQL needs a finite action set (its counterfactual enumeration) and is refused there.
Options whose defaults differ between discrete and continuous learners (--lr, --cql-samples,
--target-update-every, --target-tau, --actor-lr) are None in the config and resolved by `resolve`
once the dataset's action kind is known; the resolved values are what the checkpoint and manifest hold.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from logo_cli.algos.bc import bc_loss
from logo_cli.algos.cfcql import CfcqlConfig, CfcqlNets, cfcql_update
from logo_cli.algos.continuous_actor import OptimiserSet
from logo_cli.algos.gaussian_bc import gaussian_nll, obs_stats
from logo_cli.algos.macql import CqlSynthetic, MacqlConfig, MacqlNets, macql_update
from logo_cli.algos.macql_continuous import ContinuousCqlConfig, ContinuousCqlNets, continuous_cql_update
from logo_cli.algos.td3bc import Td3bcConfig, Td3bcNets, td3bc_update
from logo_cli.data.sampler import DEFAULT_TARGET_ESS, MixedSampler, SamplerMode, WeightBy
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import AgentNet
from logo_cli.models.corruption_levels import CorruptionLevels
from logo_cli.policies.actor_policy import DETERMINISTIC, TANH_GAUSSIAN, ContinuousActorPolicy
from logo_cli.policies.gaussian_policy import GaussianBCPolicy
from logo_cli.policies.torch_policy import (
    CONTINUOUS_MODE,
    CONTINUOUS_MODES,
    AgentNetPolicy,
    Mode,
    policy_from_payload,
    policy_payload,
)
from logo_cli.stages.run_records import config_dict as _config_dict
from logo_cli.stages.run_records import metrics_up_to as _read_metrics

# progress(phase, done, total, info); phases: "behaviour" (CFCQL's β), "bc" (first rollout policy),
# "rollout", "train", "eval".
Progress = Callable[[str, int, int, dict], None]
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
# Config fields that may change between an interrupted run and its resumption.
# The tracker is among them: how a run is watched does not change what it computes.
RESUMABLE_CHANGES = ("steps", "resume", "overwrite", "device", "allow_incomplete", "logger")
Algo = Literal["macql", "cfcql", "bc", "td3bc"]
ALGOS = ("macql", "cfcql", "bc", "td3bc")
Q_ALGOS = ("macql", "cfcql")  # learners of per-agent Q with a QMIX mixer (policy mode "q")
ACTOR_CRITIC_ALGOS = ("macql", "td3bc")  # the continuous-action offline RL learners
# Defaults of the options that differ by action kind: discrete (and Gaussian BC), continuous MA-CQL,
# MA-TD3+BC. Continuous values are the references' (Kumar et al.'s CQL-SAC, Fujimoto & Gu's TD3+BC).
RESOLVED_DEFAULTS = {
    "discrete": {"lr": 5e-4, "cql_samples": 32, "target_update_every": 200, "target_tau": 1.0},
    "macql": {"lr": 3e-4, "actor_lr": 1e-4, "cql_samples": 10, "target_update_every": 1, "target_tau": 0.005},
    "td3bc": {"lr": 3e-4, "actor_lr": 3e-4, "cql_samples": 10, "target_tau": 0.005},
}


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
    # Recurrent agents (stages/train_recurrent.py): "gru" trains MACQL / CFCQL with GRU agents on
    # batches of `seq_batch` whole episodes (and synthetic branches, whose GRU state starts from up to
    # `burn_in` real steps before them) with TD(`td_lambda`) targets.
    agent: str = "mlp"
    td_lambda: float = 0.6
    seq_batch: int = 32
    rnn_hidden: int = 64
    burn_in: int = 20


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _check_config(cfg: TrainPolicyConfig) -> None:
    if cfg.algo not in ALGOS:
        raise LogoError(f"--algo {cfg.algo}: expected macql, cfcql, bc or td3bc")
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
    from logo_cli.stages.train_recurrent import check_recurrent_config

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


def _check_work(work: Path) -> None:
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


def _load_data(cfg: TrainPolicyConfig) -> tuple[Transitions, dict]:
    from logo_cli.data.h5 import open_dataset

    with open_dataset(cfg.data) as ds:
        _check_action_kind(cfg, ds.dims.discrete, str(cfg.data))
        real = ds.transitions()
        attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float, bool))}
    if len(real) == 0:
        raise LogoError(f"{cfg.data}: no transitions")
    return real, attrs


def _check_action_kind(cfg: TrainPolicyConfig, discrete: bool, source: str) -> None:
    """Refuse, in one line, a learner or an option that does not fit the dataset's action kind."""
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


def resolve(cfg: TrainPolicyConfig, discrete: bool) -> TrainPolicyConfig:
    """The config with the action-kind-dependent defaults filled in (RESOLVED_DEFAULTS)."""
    import dataclasses

    key = cfg.algo if (not discrete and cfg.algo in ACTOR_CRITIC_ALGOS) else "discrete"
    values = dict(RESOLVED_DEFAULTS[key])
    if key == "td3bc":
        values["target_update_every"] = cfg.policy_delay
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if getattr(cfg, k) is None})


class _Trainer:
    """Everything a run changes as it trains, with its checkpoint round trip."""

    def __init__(self, cfg: TrainPolicyConfig, real: Transitions, progress: Progress | None):
        self.cfg, self.real, self.progress = cfg, real, progress
        self.dims = real.dims
        # continuous MA-CQL / MA-TD3+BC (the discrete macql is the QMIX learner)
        self.actor_critic = not self.dims.discrete and cfg.algo in ACTOR_CRITIC_ALGOS
        assert cfg.lr is not None and cfg.target_tau is not None and cfg.target_update_every is not None
        # Observations are standardised with the real data's statistics for every continuous learner;
        # recomputed from the same data on resume (and also held by the actor-critics' nets).
        self.obs_norm = None if self.dims.discrete else obs_stats(real)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(cfg.seed)
            if self.actor_critic:
                assert cfg.actor_lr is not None and self.obs_norm is not None
                ac_class = ContinuousCqlNets if cfg.algo == "macql" else Td3bcNets
                ac = ac_class(self.dims, cfg.hidden, cfg.layers)
                ac.norm.set_stats(*self.obs_norm)
                self.nets = ac
            elif cfg.algo in Q_ALGOS:
                nets_class = CfcqlNets if cfg.algo == "cfcql" else MacqlNets
                self.nets: torch.nn.Module = nets_class(self.dims, cfg.hidden, cfg.layers)
                if cfg.normalise_state:
                    self.nets.set_state_stats(torch.as_tensor(real.state))
                params = self.nets.online_parameters()
            else:
                # discrete: logits per action; continuous: a Gaussian's mean and log-std per entry
                n_out = self.dims.n_actions if self.dims.discrete else 2 * self.dims.n_actions
                self.nets = AgentNet(self.dims.obs_dim, self.dims.n_agents, n_out, cfg.hidden, cfg.layers)
                params = list(self.nets.parameters())
        self.nets.to(cfg.device)
        # the training view of the Gaussian policy: it shares self.nets (AgentNet has no dropout or
        # normalisation layers, so the eval mode GaussianBCPolicy sets changes nothing)
        self.gauss = (
            None
            if self.obs_norm is None or self.actor_critic
            else GaussianBCPolicy(self.nets, self.dims, *self.obs_norm, cfg.device)
        )
        if isinstance(self.nets, (ContinuousCqlNets, Td3bcNets)):
            assert cfg.actor_lr is not None
            self.opt: torch.optim.Optimizer | OptimiserSet = self.nets.optimisers(cfg.actor_lr, cfg.lr)
        else:
            self.opt = torch.optim.Adam(params, lr=cfg.lr)
        self.ac_cfg: ContinuousCqlConfig | Td3bcConfig | None = None
        if cfg.algo == "macql" and self.actor_critic:
            assert cfg.cql_samples is not None
            self.ac_cfg = ContinuousCqlConfig(
                gamma=cfg.gamma,
                cql_alpha=cfg.cql_alpha,
                cql_samples=cfg.cql_samples,
                target_update_every=cfg.target_update_every,
                target_tau=cfg.target_tau,
                entropy_alpha=cfg.entropy_alpha,
                cql_synthetic=cfg.cql_synthetic,
                bc_steps=cfg.actor_bc_steps,
            )
        elif cfg.algo == "td3bc":
            self.ac_cfg = Td3bcConfig(
                gamma=cfg.gamma,
                alpha=cfg.td3bc_alpha,
                policy_noise=cfg.policy_noise,
                noise_clip=cfg.noise_clip,
                policy_delay=cfg.policy_delay,
                target_tau=cfg.target_tau,
                bc_synthetic="data" if cfg.cql_synthetic == "data" else "none",
            )
        q_cfg = dict(
            gamma=cfg.gamma,
            cql_alpha=cfg.cql_alpha,
            cql_samples=cfg.cql_samples or 32,
            cql_include_data=cfg.cql_include_data,
            target_update_every=cfg.target_update_every,
            target_tau=cfg.target_tau,
            cql_synthetic=cfg.cql_synthetic,
        )
        self.macql = (
            CfcqlConfig(**q_cfg, temperature=cfg.cfcql_temperature)
            if cfg.algo == "cfcql"
            else MacqlConfig(**q_cfg)
        )
        self.gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed + 1)
        self.sampler_rng = np.random.default_rng([cfg.seed, 1])
        self.rollout_rng = np.random.default_rng([cfg.seed, 2])
        self.step = 0
        self.evals: list[dict] = []
        self.model = None
        self.rollout_policy: dict | None = None  # payload of the policy that made the current buffer
        self.rollout_rng_state: dict | None = None  # rollout RNG state before that buffer was made
        self.sampler: MixedSampler | None = None
        self.behaviour_s = 0.0  # seconds spent fitting CFCQL's behaviour policy in this process

    # --- the policy and rollouts -------------------------------------------------------------
    def agent(self) -> AgentNet:
        if isinstance(self.nets, (ContinuousCqlNets, Td3bcNets)):
            return self.nets.actor
        return self.nets.agent if isinstance(self.nets, MacqlNets) else self.nets

    def policy(self, epsilon: float = 0.0) -> AgentNetPolicy | GaussianBCPolicy | ContinuousActorPolicy:
        net = copy.deepcopy(self.agent())
        if self.actor_critic:
            assert self.obs_norm is not None
            return ContinuousActorPolicy(net, self.mode, self.dims, *self.obs_norm, device=self.cfg.device)
        if self.obs_norm is not None:
            return GaussianBCPolicy(net, self.dims, *self.obs_norm, device=self.cfg.device)
        return AgentNetPolicy(net, self.mode, self.dims, self.cfg.device, epsilon)

    @property
    def mode(self) -> Mode:
        if self.actor_critic:
            return TANH_GAUSSIAN if self.cfg.algo == "macql" else DETERMINISTIC
        if self.obs_norm is not None:
            return CONTINUOUS_MODE
        return "q" if self.cfg.algo in Q_ALGOS else "logits"

    def payload(self, net: AgentNet, mode: Mode) -> dict:
        norm = self.obs_norm if mode in CONTINUOUS_MODES else None
        return policy_payload(net, mode, self.dims, self.cfg.hidden, self.cfg.layers, obs_norm=norm)

    def rollouts(self, policy_payload_: dict) -> tuple[Transitions, np.ndarray, np.ndarray, np.ndarray]:
        """Synthetic transitions from the world model under a policy; deterministic given the RNG."""
        from logo_cli.stages.rollout import generate_rollouts

        cfg = self.cfg
        self.rollout_policy = policy_payload_
        self.rollout_rng_state = copy.deepcopy(self.rollout_rng.bit_generator.state)
        eps = cfg.rollout_epsilon if policy_payload_["mode"] == "q" else 0.0
        policy = policy_from_payload(policy_payload_, "rollout policy", cfg.device, epsilon=eps)
        n = len(self.real)
        idx = self.rollout_rng.choice(n, cfg.rollout_starts, replace=cfg.rollout_starts > n)
        parts, unc, steps, branches = [], [], [], []
        stream = generate_rollouts(
            self.model,
            policy,
            self.real.select(idx),
            cfg.horizon,
            cfg.rollout_batch,
            self.rollout_rng,
            cfg.device,
            termination=cfg.termination,
            reward_range=(float(self.real.reward.min()), float(self.real.reward.max())),
        )
        for rows, u, step, branch in stream:
            parts.append(rows)
            unc.append(u)
            steps.append(step)
            branches.append(branch)
            if self.progress is not None:
                self.progress("rollout", sum(len(p) for p in parts), 0, {"step": self.step})
        return Transitions.concat(parts), np.concatenate(unc), np.concatenate(branches), np.concatenate(steps)

    def fit_behaviour(self) -> None:
        """CFCQL: fit β by BC on the real data (a fresh run only; a resumed one has it in the checkpoint).

        train_bc seeds its own init and minibatches, so the global torch RNG and the run's other
        generators are untouched and a run is repeatable."""
        from logo_cli.algos.bc import train_bc

        assert isinstance(self.nets, CfcqlNets)

        def bc_progress(step: int, total: int, info: dict) -> None:
            if self.progress is not None:
                self.progress("behaviour", step, total, info)

        bc = train_bc(
            self.real,
            steps=self.cfg.cfcql_bc_steps,
            hidden=self.cfg.hidden,
            layers=self.cfg.layers,
            seed=self.cfg.seed,
            device=self.cfg.device,
            progress=bc_progress,
        )
        self.nets.set_behaviour(bc.net)

    def first_rollout_policy(self) -> dict:
        """The policy of the first synthetic buffer: BC of the real data (Gaussian BC on continuous
        actions, the same network the rollout stage fits)."""
        from logo_cli.algos.bc import train_bc
        from logo_cli.algos.gaussian_bc import train_gaussian_bc

        def bc_progress(step: int, total: int, info: dict) -> None:
            if self.progress is not None:
                self.progress("bc", step, total, info)

        if not self.dims.discrete:
            gbc = train_gaussian_bc(
                self.real,
                steps=self.cfg.bc_steps,
                hidden=self.cfg.hidden,
                layers=self.cfg.layers,
                seed=self.cfg.seed,
                device=self.cfg.device,
                progress=bc_progress,
            )
            return self.payload(gbc.net, CONTINUOUS_MODE)
        bc = train_bc(
            self.real,
            steps=self.cfg.bc_steps,
            hidden=self.cfg.hidden,
            layers=self.cfg.layers,
            seed=self.cfg.seed,
            device=self.cfg.device,
            progress=bc_progress,
        )
        return self.payload(bc.net, "logits")

    # --- one gradient step -------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        assert self.sampler is not None
        batch = self.sampler.sample(self.cfg.batch_size)
        self.step += 1
        if isinstance(self.nets, ContinuousCqlNets):
            assert isinstance(self.opt, OptimiserSet) and isinstance(self.ac_cfg, ContinuousCqlConfig)
            return continuous_cql_update(self.nets, self.opt, batch, self.ac_cfg, self.step, self.gen)
        if isinstance(self.nets, Td3bcNets):
            assert isinstance(self.opt, OptimiserSet) and isinstance(self.ac_cfg, Td3bcConfig)
            return td3bc_update(self.nets, self.opt, batch, self.ac_cfg, self.step, self.gen)
        if isinstance(self.nets, CfcqlNets):
            assert isinstance(self.macql, CfcqlConfig)
            return cfcql_update(self.nets, self.opt, batch, self.macql, self.step, self.gen)
        if isinstance(self.nets, MacqlNets):
            return macql_update(self.nets, self.opt, batch, self.macql, self.step, self.gen)
        if self.gauss is not None:
            # the simulator clips actions to [-1, 1]: fit the action it executed (as train_gaussian_bc)
            loss = gaussian_nll(self.gauss, batch["obs"], batch["actions"].clamp(-1.0, 1.0))
        else:
            loss = bc_loss(self.nets, batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), "bc_loss": loss.detach()}

    # --- checkpoint round trip ---------------------------------------------------------------
    def state(self) -> dict:
        assert self.sampler is not None
        return {
            "format": "logo-train-policy-state",
            "format_version": 1,
            "version": 1,
            "config": _config_dict(self.cfg),
            "step": self.step,
            "nets": {k: v.detach().cpu() for k, v in self.nets.state_dict().items()},
            "optimiser": self.opt.state_dict(),
            "sampler_rng": self.sampler.get_state(),
            "cql_generator": self.gen.get_state(),
            "rollout_rng": self.rollout_rng.bit_generator.state,
            "rollout_rng_at_refresh": self.rollout_rng_state,
            "rollout_policy": self.rollout_policy,
            "c": self.sampler.c,
            "evals": self.evals,
        }

    def restore(self, state: dict, source: str) -> None:
        from logo_cli.artifacts import check_format_version, format_version

        check_format_version(format_version(state, "version"), 1, "train-policy checkpoint", source)
        try:
            self._restore(state, source)
            scratch = np.random.default_rng()  # RNG states are applied later: check them now
            for key in ("sampler_rng", "rollout_rng", "rollout_rng_at_refresh"):
                if state[key] is not None or key != "rollout_rng_at_refresh":
                    scratch.bit_generator.state = state[key]
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise LogoError(f"{source}: garbled train-policy checkpoint ({detail})") from None

    def _restore(self, state: dict, source: str) -> None:
        saved = {k: v for k, v in state["config"].items() if k not in RESUMABLE_CHANGES}
        now = {k: v for k, v in _config_dict(self.cfg).items() if k not in RESUMABLE_CHANGES}
        # A field newer than the checkpoint was at its default when that run was made.
        defaults = {f.name: f.default for f in fields(TrainPolicyConfig) if f.default is not MISSING}
        saved = {k: saved.get(k, defaults.get(k)) for k in now} | saved
        diffs = [f"{k} {saved.get(k)!r} vs {now[k]!r}" for k in now if saved.get(k) != now[k]]
        if diffs:
            raise LogoError(
                f"{source}: checkpoint of another configuration ({'; '.join(diffs)}); "
                "pass --no-resume to start over"
            )
        self.nets.load_state_dict(state["nets"])
        self.opt.load_state_dict(state["optimiser"])
        self.step = int(state["step"])
        self.gen.set_state(state["cql_generator"])
        self.evals = list(state["evals"])
        self.rollout_rng_state = state["rollout_rng_at_refresh"]
        self.rollout_policy = state["rollout_policy"]
        self._sampler_state = state["sampler_rng"]
        self._rollout_rng_final = state["rollout_rng"]


@dataclass
class TrainPolicyResult:
    out: Path
    steps: int
    resumed_from: int  # the checkpoint step this session started from (0: a fresh run)
    steps_per_s: float  # gradient steps (sampling included) per second of update time, this session
    c: float | None
    final: dict  # losses of the last logged step
    evals: list[dict]
    manifest: dict


def _synthetic(t: _Trainer, state: dict | None) -> tuple[tuple | None, dict]:
    """The synthetic data the run starts (or resumes) with (transitions, uncertainty, branch, step),
    and where it came from."""
    from logo_cli.stages.rollout import load_model_run

    cfg = t.cfg
    if cfg.mode == "real-only":
        return None, {"kind": "none"}
    if cfg.synthetic is not None:
        from logo_cli.data.zarr_store import open_synthetic

        buf = open_synthetic(cfg.synthetic, allow_incomplete=cfg.allow_incomplete)
        t.dims.check_same(buf.dims, f"{cfg.synthetic} vs {cfg.data}")
        syn = (buf.transitions(), buf.uncertainty, buf.branch, buf.step)
        info = {"kind": "buffer", "path": str(cfg.synthetic), "complete": buf.complete, "rows": buf.n}
        return syn, info
    assert cfg.model is not None
    from logo_cli.models.corruption import corrupted

    mr = load_model_run(cfg.model, cfg.device)
    t.dims.check_same(mr.model.dims, f"model {cfg.model} vs {cfg.data}")
    t.model = corrupted(mr.model, cfg.corruption, t.real.obs)
    info = {"kind": "model", "run": str(cfg.model), "model_kind": mr.kind, "hash": mr.hash}
    if cfg.corruption.active:
        info["corruption"] = cfg.corruption.to_dict()
    if state is None:
        syn = t.rollouts(t.first_rollout_policy())
    else:  # rebuild the buffer in use at the checkpoint: same policy, same RNG state
        assert t.rollout_rng_state is not None and t.rollout_policy is not None
        t.rollout_rng.bit_generator.state = t.rollout_rng_state
        syn = t.rollouts(t.rollout_policy)
        t.rollout_rng.bit_generator.state = t._rollout_rng_final
    return syn, info


def _evaluate(t: _Trainer, env) -> dict:
    from logo_cli.stages.evaluate import run_episodes

    res = run_episodes(env, t.policy(), t.cfg.eval_episodes, seed=t.cfg.seed + t.step, greedy=True)
    keep = ("win_rate", "win_rate_ci95", "return_mean", "return_ci95", "length_mean", "episodes")
    return {"step": t.step, **{k: res[k] for k in keep}}


def _open_eval_env(cfg: TrainPolicyConfig, t: _Trainer):
    if cfg.eval_env is None:
        return None
    from logo_cli.envs import make_env
    from logo_cli.stages.evaluate import env_dims

    env = make_env(cfg.eval_env, num_envs=min(cfg.eval_episodes, 32))
    env_dims(env.spec).check_same(t.dims, f"--eval-env {cfg.eval_env} vs {cfg.data}")
    return env


def _train(cfg: TrainPolicyConfig, real: Transitions, work: Path, progress: Progress | None):
    """Build or restore the trainer, then train to cfg.steps (checkpointing into `work`)."""
    from logo_cli.artifacts import load_checkpoint

    if cfg.agent == "gru":
        from logo_cli.stages.train_recurrent import RecurrentTrainer

        t = RecurrentTrainer(cfg, real, progress)
    else:
        t = _Trainer(cfg, real, progress)
    ckpt = work / CHECKPOINT
    state = load_checkpoint(ckpt, cfg.device) if ckpt.is_file() else None
    if state is not None:
        if state.get("format") != "logo-train-policy-state":
            raise LogoError(f"{ckpt}: not a train-policy checkpoint")
        t.restore(state, str(ckpt))
    elif cfg.algo == "cfcql":
        t0 = time.perf_counter()
        t.fit_behaviour()
        t.behaviour_s = time.perf_counter() - t0
    resumed_from = t.step
    env = _open_eval_env(cfg, t)
    try:
        return _loop(t, env, work, state, resumed_from, progress)
    finally:
        if env is not None:
            env.close()


def _loop(t: _Trainer, env, work: Path, state: dict | None, resumed_from: int, progress: Progress | None):
    from logo_cli.artifacts import save_checkpoint

    cfg, real, ckpt = t.cfg, t.real, work / CHECKPOINT
    syn, syn_info = _synthetic(t, state)
    syn_rows, unc, branch, step = syn if syn is not None else (None, None, None, None)
    t.sampler = MixedSampler(
        real,
        syn_rows,
        unc,
        branch=branch,
        step=step,
        mode=cfg.mode,
        synthetic_ratio=cfg.synthetic_ratio,
        c=cfg.c,
        temperature=cfg.temperature,
        target_ess=cfg.target_ess,
        weight_by=cfg.weight_by,
        penalty_lambda=cfg.penalty_lambda,
        gamma=cfg.gamma,
        n_step=cfg.n_step if cfg.algo in (*Q_ALGOS, "td3bc") else 1,
        rng=t.sampler_rng,
        device=cfg.device,
    )
    if state is not None:
        t.sampler.set_state(t._sampler_state)

    from logo_cli.checks import LossGuard

    guard = LossGuard()
    kept = (
        f"the last good checkpoint stays in {ckpt} (pass --no-resume to start over)"
        if ckpt.is_file()
        else "no checkpoint was written yet"
    )
    metrics_path = work / METRICS
    lines = _read_metrics(metrics_path, t.step)
    metrics_path.write_text("".join(line + "\n" for line in lines))
    timers = {"update_s": 0.0, "eval_s": 0.0, "rollout_s": 0.0}
    if cfg.algo == "cfcql":
        timers["behaviour_s"] = t.behaviour_s
    final: dict = {}
    window_t, window_steps = 0.0, 0
    from logo_cli.tracking import open_tracker

    # resumed_from None on a fresh run: no events to purge
    tracker = open_tracker(cfg.logger, work, cfg.out.name, "train-policy", _config_dict(cfg), t.step or None)

    def record(kind: str, step: int, values: dict) -> None:
        log.write(json.dumps({"step": step, "kind": kind, "wall_time": time.time(), **values}) + "\n")
        tracker.log(step, {f"{kind}/{k}": v for k, v in values.items() if k != "step"})

    with open(metrics_path, "a") as log:
        try:
            while t.step < cfg.steps:
                t0 = time.perf_counter()
                parts = t.update()
                guard.observe(parts["loss"], t.step)  # on the loss's device: no sync per step
                dt = time.perf_counter() - t0
                timers["update_s"] += dt
                window_t, window_steps = window_t + dt, window_steps + 1
                s = t.step
                if s % cfg.log_every == 0 or s == cfg.steps:
                    guard.check(s, str(cfg.out), kept)
                    final = {k: float(v) for k, v in parts.items()}
                    final["steps_per_s"] = window_steps / max(window_t, 1e-9)
                    window_t, window_steps = 0.0, 0
                    record("train", s, final)
                    if progress is not None:
                        progress("train", s, cfg.steps, final)
                if (
                    t.model is not None
                    and cfg.refresh_every > 0
                    and s % cfg.refresh_every == 0
                    and s < cfg.steps
                ):
                    t0 = time.perf_counter()
                    syn_rows, unc, branch, step = t.rollouts(t.payload(t.agent(), t.mode))
                    t.sampler.set_synthetic(syn_rows, unc, branch, step)
                    timers["rollout_s"] += time.perf_counter() - t0
                    info = {
                        "synthetic": len(syn_rows),
                        "c": t.sampler.c,
                        "temperature": t.sampler.temperature,
                    }
                    record("refresh", s, info)
                if env is not None and (s % cfg.eval_every == 0 or s == cfg.steps):
                    t0 = time.perf_counter()
                    t.evals.append(_evaluate(t, env))
                    timers["eval_s"] += time.perf_counter() - t0
                    record("eval", s, t.evals[-1])
                    if progress is not None:
                        progress("eval", s, cfg.steps, t.evals[-1])
                if s % cfg.checkpoint_every == 0 and s < cfg.steps:
                    guard.check(s, str(cfg.out), kept)
                    _check_weights(t, cfg.out, kept)  # a checkpoint never holds a diverged model
                    log.flush()
                    save_checkpoint(ckpt, t.state())
                    kept = f"the last good checkpoint (step {s}) stays in {ckpt} (pass --no-resume to start over)"  # noqa: E501
        finally:
            tracker.close()
    guard.check(t.step, str(cfg.out), kept)
    _check_weights(t, cfg.out, kept)
    return t, resumed_from, final, timers, syn_info


def _check_weights(t: _Trainer, out: Path, kept: str) -> None:
    from logo_cli.checks import nonfinite_tensors

    bad = nonfinite_tensors(t.nets.state_dict())
    if bad:
        raise LogoError(
            f"{out}: weights became NaN or inf ({bad[0]}) by step {t.step}; training stopped, {kept}"
        )


def run(cfg: TrainPolicyConfig, progress: Progress | None = None) -> TrainPolicyResult:
    """Train, evaluate and checkpoint; on completion write policy.pt + manifest.json into cfg.out.

    Holds cfg.out's lock for the whole run."""
    from logo_cli.outputs import exclusive

    _check_config(cfg)
    with exclusive(cfg.out):
        return _run(cfg, progress)


def _run(cfg: TrainPolicyConfig, progress: Progress | None) -> TrainPolicyResult:
    from logo_cli.artifacts import make_manifest, write_json_atomic
    from logo_cli.outputs import check_target, swap_in
    from logo_cli.policies.torch_policy import save_policy

    wall0 = time.perf_counter()
    check_target(cfg.out, "train-policy", cfg.overwrite)  # again, now that the lock is held
    real, data_attrs = _load_data(cfg)
    cfg = resolve(cfg, real.dims.discrete)
    work = partial_dir(cfg.out)
    ckpt = work / CHECKPOINT
    resuming = cfg.resume and ckpt.is_file()
    if (work.exists() or work.is_symlink()) and not resuming:
        _check_work(work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)

    try:
        t, resumed_from, final, timers, syn_info = _train(cfg, real, work, progress)
    except BaseException:
        if not ckpt.is_file():  # nothing worth resuming: leave no trace
            shutil.rmtree(work, ignore_errors=True)
        raise

    done = cfg.steps - resumed_from
    steps_per_s = done / max(timers["update_s"], 1e-9) if done else 0.0
    mode = t.mode
    meta = {"algo": cfg.algo, "stage": "train-policy", "data": str(cfg.data), "steps": cfg.steps}
    mixer = t.nets.mixer_payload() if isinstance(t.nets, MacqlNets) else None
    if hasattr(t, "save_policy"):  # --agent gru: a recurrent policy file (stages/train_recurrent.py)
        t.save_policy(work / "policy.pt", meta)
    else:
        save_policy(
            work / "policy.pt", t.agent(), mode, t.dims, cfg.hidden, cfg.layers, meta, mixer, t.obs_norm
        )
    inputs: dict[str, str | Path] = {"data": cfg.data}
    if syn_info["kind"] == "buffer" and cfg.synthetic is not None:
        inputs["synthetic"] = cfg.synthetic
    elif syn_info["kind"] == "model" and cfg.model is not None:
        inputs["model"] = cfg.model / "model.pt"
    c_source = None
    if t.sampler.c is not None:
        c_source = "given" if cfg.c is not None else "0.9 quantile of the score"
    t_source = None
    if t.sampler.temperature is not None:
        solved = f"solved for effective sample size {cfg.target_ess}"
        t_source = "given" if cfg.temperature is not None else solved
    metrics = {"steps_per_s": steps_per_s, "final": final, "final_eval": t.evals[-1] if t.evals else None}
    extra = {
        "dims": t.dims.to_dict(),
        "dataset_attrs": data_attrs,
        "sampler": {
            "mode": cfg.mode,
            "synthetic_ratio": t.sampler.ratio,
            "c": t.sampler.c,
            "c_source": c_source,
            "temperature": t.sampler.temperature,
            "temperature_source": t_source,
            "weight_by": cfg.weight_by,
            "effective_sample_size": t.sampler.ess(),
            "penalty_lambda": cfg.penalty_lambda,
        },
        "synthetic": syn_info,
        "policy": {"file": "policy.pt", "mode": mode, "algo": cfg.algo},
        "evals": t.evals,
        "timers": timers,
        "resumed_from": resumed_from,
    }
    manifest = make_manifest(
        "train-policy",
        _config_dict(cfg),
        inputs,
        cfg.seed,
        metrics,
        extra,
        wall_time_s=time.perf_counter() - wall0,
        artifact=cfg.out,
    )
    write_json_atomic(work / "manifest.json", manifest)
    try:  # checked again just before the swap; a refusal keeps the finished run in `work`
        swap_in(work, cfg.out, "train-policy", cfg.overwrite)
    except LogoError as e:
        raise LogoError(f"{e} [the finished run is kept in {work}]") from None
    (cfg.out / CHECKPOINT).unlink(missing_ok=True)  # only once published: a refusal can still resume
    return TrainPolicyResult(
        cfg.out, cfg.steps, resumed_from, steps_per_s, t.sampler.c, final, t.evals, manifest
    )
