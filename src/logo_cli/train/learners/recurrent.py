"""Recurrent MACQL / CFCQL learners (`--agent gru`): the reference codebase's setting (thu-rllab/CFCQL,
pymarl style; Shao et al. 2023) of GRU agents trained on batches of `seq_batch` whole episodes with
TD(`td_lambda`) targets; algos/recurrent.py holds the loss and its deviations. Synthetic branches
join the batches as sequences started from the GRU state of up to `burn_in` real steps before them
(BranchSampler). Episodes and branches are drawn with the run's sampler RNG, so checkpoints and
resumption need nothing new. Acts with policy mode "recurrent_q" (policies/recurrent_policy.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from logo_cli.algos.cfcql import CfcqlNets, counterfactual_term
from logo_cli.algos.macql import MacqlNets, apply_update, sampled_cql_term
from logo_cli.algos.recurrent import (
    BranchSampler,
    EpisodeSampler,
    SequenceBatcher,
    episode_bounds,
    make_recurrent,
    recurrent_loss,
)
from logo_cli.data.sampler import MixedSampler
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.models.gru_agent import GRUAgent
from logo_cli.policies.recurrent_policy import RECURRENT_MODE, RecurrentQPolicy, recurrent_payload
from logo_cli.train.learners.base import Options
from logo_cli.train.learners.cfcql import CfcqlLearner
from logo_cli.train.learners.macql import MacqlLearner


class RecurrentMacqlLearner(MacqlLearner):
    mode = RECURRENT_MODE
    term = staticmethod(sampled_cql_term)

    def __init__(self, dims, real: Transitions, opts: Options):
        if len(episode_bounds(real)[0]) == 0:
            raise LogoError(f"{opts.data}: no episodes")
        super().__init__(dims, real, opts)
        self.real = real
        self.batcher: SequenceBatcher | None = None

    def build(self, real: Transitions) -> nn.Module:
        # the MLP agent is made, then swapped (make_recurrent): the seeded init stays the one of
        # earlier runs, so a seed gives the same GRU weights as before
        nets = make_recurrent(self.networks(), self.dims, self.opts.rnn_hidden)
        if self.opts.normalise_state:
            nets.set_state_stats(torch.as_tensor(real.state))
        return nets

    def batches(self, sampler: MixedSampler) -> Callable[[], dict[str, torch.Tensor]]:
        episodes = EpisodeSampler(self.real, sampler.rng, self.opts.device)
        view = sampler.synthetic_view()
        branches = None
        if view is not None:
            branches = BranchSampler(episodes, view, sampler.mode == "weight", self.opts.burn_in)
        self.batcher = batcher = SequenceBatcher(episodes, branches, sampler.ratio)
        nets, size = self.nets, self.opts.seq_batch
        return lambda: batcher.sample(nets, size)

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        assert isinstance(self.nets, MacqlNets) and self.batcher is not None
        loss, parts = recurrent_loss(self.nets, batch, self.cfg, self.term, self.opts.td_lambda, self.gen)
        branches = self.batcher.branches
        if branches is not None:  # share of branches whose start was found in the data
            parts["branch_starts_found"] = torch.tensor(branches.matched / max(len(branches.first), 1))
        return apply_update(self.nets, self.opt, loss, parts, self.cfg, step)

    def agent(self) -> GRUAgent:
        assert isinstance(self.nets.agent, GRUAgent)
        return self.nets.agent

    def policy(self, epsilon: float = 0.0) -> RecurrentQPolicy:
        return RecurrentQPolicy(copy.deepcopy(self.agent()), self.dims, self.opts.device, epsilon)

    def payload(self) -> dict:
        return recurrent_payload(self.agent(), self.dims)

    def save_policy(self, path, meta: dict) -> None:
        from logo_cli.artifacts import save_checkpoint

        save_checkpoint(path, recurrent_payload(self.agent(), self.dims, meta, self.nets.mixer_payload()))


class RecurrentCfcqlLearner(RecurrentMacqlLearner, CfcqlLearner):
    nets: CfcqlNets
    term = staticmethod(counterfactual_term)
