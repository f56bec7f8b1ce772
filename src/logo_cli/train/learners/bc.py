"""Behaviour cloning learners (`--algo bc`): per-agent cross-entropy on the data's actions (discrete,
policy mode "logits"; algos/bc.py), or a Gaussian's negative log-likelihood of the executed action
(continuous, `--mode real-only` only, policy mode "gaussian"; algos/gaussian_bc.py). Shared
parameters across agents with a one-hot agent id, as every learner here."""

from __future__ import annotations

import copy

import torch
from torch import nn

from logo_cli.algos.bc import bc_loss
from logo_cli.algos.gaussian_bc import gaussian_nll, obs_stats
from logo_cli.data.transitions import Transitions
from logo_cli.models.agent_net import AgentNet
from logo_cli.policies.gaussian_policy import GaussianBCPolicy
from logo_cli.policies.torch_policy import CONTINUOUS_MODE
from logo_cli.train.learners.base import Learner


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"loss": loss.detach(), "bc_loss": loss.detach()}


class BcLearner(Learner):
    mode = "logits"

    def build(self, real: Transitions) -> nn.Module:
        d, o = self.dims, self.opts
        return AgentNet(d.obs_dim, d.n_agents, d.n_actions, o.hidden, o.layers)  # logits per action

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        return _step(self.opt, bc_loss(self.nets, batch))


class GaussianBcLearner(Learner):
    mode = CONTINUOUS_MODE

    def __init__(self, dims, real: Transitions, opts):
        # observations standardised with the real data's statistics (recomputed from it on resume)
        self.obs_norm = obs_stats(real)
        super().__init__(dims, real, opts)
        # the training view of the policy: it shares self.nets (AgentNet has no dropout or
        # normalisation layers, so the eval mode GaussianBCPolicy sets changes nothing)
        self.gauss = GaussianBCPolicy(self.nets, dims, *self.obs_norm, opts.device)

    def build(self, real: Transitions) -> nn.Module:
        d, o = self.dims, self.opts
        return AgentNet(d.obs_dim, d.n_agents, 2 * d.n_actions, o.hidden, o.layers)  # mean, log-std

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        # the simulator clips actions to [-1, 1]: fit the action it executed (as train_gaussian_bc)
        return _step(self.opt, gaussian_nll(self.gauss, batch["obs"], batch["actions"].clamp(-1.0, 1.0)))

    def policy(self, epsilon: float = 0.0) -> GaussianBCPolicy:
        assert self.obs_norm is not None
        return GaussianBCPolicy(copy.deepcopy(self.nets), self.dims, *self.obs_norm, device=self.opts.device)
