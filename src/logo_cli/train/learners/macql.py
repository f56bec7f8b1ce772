"""MACQL learner (`--algo macql`, discrete actions): CQL (Kumar et al. 2020) on a QMIX mixture of
per-agent Qs, as the CFCQL codebase's MACQL baseline (Shao et al. 2023). Loss, update and their
deviations from the reference: algos/macql.py. Acts greedily over its per-agent Qs (policy mode "q");
the mixer travels in the policy file."""

from __future__ import annotations

import torch
from torch import nn

from logo_cli.algos.macql import MacqlConfig, MacqlNets, macql_update
from logo_cli.data.transitions import Transitions
from logo_cli.train.learners.base import Learner, Options


def q_config(opts: Options) -> dict:
    """The MacqlConfig fields the run's options set (shared with CFCQL)."""
    return dict(
        gamma=opts.gamma,
        cql_alpha=opts.cql_alpha,
        cql_samples=opts.cql_samples or 32,
        cql_include_data=opts.cql_include_data,
        cql_greedy=opts.cql_greedy,
        target_update_every=opts.target_update_every,
        target_tau=opts.target_tau,
        cql_synthetic=opts.cql_synthetic,
    )


class MacqlLearner(Learner):
    n_step = True
    mode = "q"
    nets: MacqlNets

    def __init__(self, dims, real: Transitions, opts: Options):
        super().__init__(dims, real, opts)
        self.cfg = self.config(opts)

    def config(self, opts: Options) -> MacqlConfig:
        return MacqlConfig(**q_config(opts))

    def networks(self) -> MacqlNets:
        return MacqlNets(self.dims, self.opts.hidden, self.opts.layers)

    def build(self, real: Transitions) -> nn.Module:
        nets = self.networks()
        if self.opts.normalise_state:
            nets.set_state_stats(torch.as_tensor(real.state))
        return nets

    def optimiser(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.nets.online_parameters(), lr=self.opts.lr)

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        return macql_update(self.nets, self.opt, batch, self.cfg, step, self.gen)

    def agent(self) -> nn.Module:
        return self.nets.agent

    def mixer(self) -> dict:
        return self.nets.mixer_payload()
