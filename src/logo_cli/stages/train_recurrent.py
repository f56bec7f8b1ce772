"""train-policy with `--agent gru`: MACQL / CFCQL with GRU agents on whole episodes (algos/recurrent.py).

The run is the feed-forward one of stages/train_policy.py (checkpoints, exact resume, evaluation,
manifest) with three things swapped: the networks (GRU agent and its target copy in MacqlNets /
CfcqlNets), the gradient step (a batch of `seq_batch` whole episodes with TD(λ) targets instead of
transitions) and the saved policy (mode "recurrent_q", policies/recurrent_policy.py). Episodes are
drawn with the run's sampler RNG, so checkpoints and resumption need nothing new.

Synthetic data (a fixed buffer: --synthetic, or --model with --refresh-every 0) is sampled as whole
branches, each started from the GRU state of its real episode prefix (algos/recurrent.py,
BranchSampler); `seq_batch · synthetic_ratio` of each batch's sequences are branches.

Limits (each refused in one line by `check_recurrent_config`):
- no rollout refreshes (--model with --refresh-every > 0): the rollout generator acts on pools of
  branches that end and restart at new dataset states, which a policy with memory cannot follow;
- weight mode with the cumulative score only (--weight-by step: per-step weights may grow along a
  branch, which the branch cut of BranchSampler does not reproduce);
- MACQL and CFCQL only (BC stays feed-forward);
- TD(λ) replaces --n-step (which must stay 1).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from logo_cli.algos.cfcql import CfcqlNets, counterfactual_term
from logo_cli.algos.macql import MacqlNets, apply_update, sampled_cql_term
from logo_cli.algos.recurrent import (
    BranchSampler,
    EpisodeSampler,
    SequenceBatcher,
    make_recurrent,
    recurrent_loss,
)
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.models.gru_agent import GRUAgent
from logo_cli.policies.recurrent_policy import RECURRENT_MODE, RecurrentQPolicy, recurrent_payload
from logo_cli.stages.train_policy import Q_ALGOS, Progress, TrainPolicyConfig, _Trainer

AGENTS = ("mlp", "gru")
NO_REFRESH = (
    "--agent gru: rollout refreshes are not supported (a recurrent policy cannot drive the rollout "
    "generator); use --synthetic BUFFER or --model with --refresh-every 0"
)


def check_recurrent_config(cfg: TrainPolicyConfig) -> None:
    """One-line refusals for what `--agent gru` does not support; ranges of its options."""
    from logo_cli.checks import MAX_WIDTH, integer, number

    if cfg.agent not in AGENTS:
        raise LogoError(f"--agent {cfg.agent}: expected one of {', '.join(AGENTS)}")
    if cfg.agent == "mlp":
        return
    if cfg.algo not in Q_ALGOS:
        raise LogoError(f"--agent gru: needs --algo macql or cfcql (--algo {cfg.algo} is feed-forward only)")
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


class RecurrentTrainer(_Trainer):
    """The train-policy trainer with GRU agents; see the module docstring."""

    def __init__(self, cfg: TrainPolicyConfig, real: Transitions, progress: Progress | None):
        super().__init__(cfg, real, progress)
        with torch.random.fork_rng(devices=[]):  # seeded init, as the feed-forward trainer's
            torch.manual_seed(cfg.seed)
            nets_class = CfcqlNets if cfg.algo == "cfcql" else MacqlNets
            self.nets = make_recurrent(
                nets_class(self.dims, cfg.hidden, cfg.layers), self.dims, cfg.rnn_hidden
            )
            if cfg.normalise_state:
                self.nets.set_state_stats(torch.as_tensor(real.state))
        self.nets.to(cfg.device)
        self.opt = torch.optim.Adam(self.nets.online_parameters(), lr=cfg.lr)
        self.episodes = EpisodeSampler(real, self.sampler_rng, cfg.device)
        if self.episodes.n_episodes == 0:
            raise LogoError(f"{cfg.data}: no episodes")
        self.batcher: SequenceBatcher | None = None  # built on the first step, once the buffer is in

    def _batcher(self) -> SequenceBatcher:
        if self.batcher is None:
            assert self.sampler is not None
            view = self.sampler.synthetic_view()
            branches = None
            if view is not None:
                weighted = self.sampler.mode == "weight"
                branches = BranchSampler(self.episodes, view, weighted, self.cfg.burn_in)
            self.batcher = SequenceBatcher(self.episodes, branches, self.sampler.ratio)
        return self.batcher

    def agent(self) -> GRUAgent:  # type: ignore[override]
        assert isinstance(self.nets.agent, GRUAgent)
        return self.nets.agent

    def policy(self, epsilon: float = 0.0) -> RecurrentQPolicy:  # type: ignore[override]
        return RecurrentQPolicy(copy.deepcopy(self.agent()), self.dims, self.cfg.device, epsilon)

    @property
    def mode(self):  # type: ignore[override]
        return RECURRENT_MODE

    def update(self) -> dict[str, torch.Tensor]:
        assert isinstance(self.nets, MacqlNets)
        batcher = self._batcher()
        batch = batcher.sample(self.nets, self.cfg.seq_batch)
        self.step += 1
        term = counterfactual_term if isinstance(self.nets, CfcqlNets) else sampled_cql_term
        loss, parts = recurrent_loss(self.nets, batch, self.macql, term, self.cfg.td_lambda, self.gen)
        if batcher.branches is not None:  # share of branches whose start was found in the data
            matched = batcher.branches.matched / max(len(batcher.branches.first), 1)
            parts["branch_starts_found"] = torch.tensor(matched)
        return apply_update(self.nets, self.opt, loss, parts, self.macql, self.step)

    def save_policy(self, path: Path, meta: dict) -> None:
        from logo_cli.artifacts import save_checkpoint

        assert isinstance(self.nets, MacqlNets)
        save_checkpoint(path, recurrent_payload(self.agent(), self.dims, meta, self.nets.mixer_payload()))
