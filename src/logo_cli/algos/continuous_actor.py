"""Pieces shared by the continuous-action offline learners (algos/macql_continuous.py, algos/td3bc.py).

- Actors: the shared per-agent AgentNet (one-hot agent id) on the agent's standardised observation.
  A tanh-Gaussian actor (MA-CQL, SAC-style) outputs the pre-tanh mean and the log-std of each action
  entry; a deterministic actor (TD3+BC) outputs the pre-tanh action. Both act inside [-1, 1] through
  tanh, so the action the simulator receives is the action the critic was trained on.
- `ContinuousActorPolicy` (policies/actor_policy.py): the TeamPolicy of both, saved in policy.pt as
  mode "tanh_gaussian" or "deterministic".
- `TwinCritic`: two independent per-agent critics Q_k(o_i, a_i) (k = 1, 2) in one module, their
  layers stacked as [2, in, out] weights so both run as one batched matmul per layer.
- `OptimiserSet`: several Adam optimisers saved and restored as one state dict.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LOG_2 = math.log(2.0)


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """log(1 − tanh(u)²), computed as 2 (log 2 − u − softplus(−2u)): exact and finite for large |u|."""
    return 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))


def tanh_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log π(tanh(u)) for u ~ N(mean, std²), summed over the last (action) axis: the Gaussian density
    of u minus the log-Jacobian of tanh."""
    normal = -0.5 * ((u - mean) * torch.exp(-log_std)).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    return (normal - tanh_log_det(u)).sum(-1)


def tanh_gaussian_sample(
    mean: torch.Tensor,
    log_std: torch.Tensor,
    k: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised draws a = tanh(mean + std·ε) and their log-probs (summed over action entries).

    mean, log_std [..., Ad]; k None: one draw per row ([..., Ad], [...]); k: k draws ([k, ..., Ad],
    [k, ...]). Gradients flow to mean and log_std (the SAC actor loss needs them)."""
    shape = mean.shape if k is None else (k, *mean.shape)
    eps = torch.randn(shape, generator=generator, device=mean.device, dtype=mean.dtype)
    std = torch.exp(log_std)
    u = mean + std * eps
    # log N(u; mean, std) with (u − mean)/std = ε exactly, which saves a division
    normal = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    return torch.tanh(u), (normal - tanh_log_det(u)).sum(-1)


class ObsNorm(nn.Module):
    """Standardisation of the agents' observations with the real data's statistics (buffers, so they
    travel with the networks' state_dict and the checkpoint)."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    @torch.no_grad()
    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std


class TwinCritic(nn.Module):
    """Two per-agent critics Q_k(o_i, a_i) with shared parameters across agents (one-hot agent id),
    independent of each other: (obs [B,N,O], actions [..., B,N,Ad]) -> [2, ..., B,N]. ReLU MLPs
    initialised like nn.Linear, evaluated for both critics with one batched matmul per layer.

    The first layer's observation-and-id part is computed once per (row, agent) and shared by every
    action evaluated there (CQL evaluates 1 + 3K actions per row), so only the action columns are
    multiplied per action."""

    def __init__(
        self, obs_dim: int, n_actions: int, n_agents: int, hidden: int, layers: int, critics: int = 2
    ):
        super().__init__()
        self.obs_dim, self.n_actions, self.n_agents, self.critics = obs_dim, n_actions, n_agents, critics
        dims = [obs_dim + n_agents + n_actions] + [hidden] * layers + [1]  # input: [obs, id, action]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter(torch.empty(critics, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(critics, 1, b).uniform_(-bound, bound)))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        c, n = self.critics, self.n_agents
        rows = obs.shape[:-1]  # [B,N]
        lead = actions.shape[:-1]  # [..., B,N]
        if lead[len(lead) - len(rows) :] != rows:
            raise ValueError(f"critic: actions {list(actions.shape)} do not fit obs {list(obs.shape)}")
        ids = torch.eye(n, device=obs.device, dtype=obs.dtype).expand(*rows, n)
        x_obs = torch.cat([obs, ids], dim=-1).reshape(1, -1, self.obs_dim + n).expand(c, -1, -1)
        w0, b0 = self.weights[0], self.biases[0]
        h_obs = torch.baddbmm(b0, x_obs, w0[:, : self.obs_dim + n])  # [C, B·N, H]
        a = actions.reshape(1, -1, self.n_actions).expand(c, -1, -1)
        h = torch.bmm(a, w0[:, self.obs_dim + n :])  # [C, S·B·N, H]
        h = F.relu(h.view(c, -1, *h_obs.shape[1:]) + h_obs.unsqueeze(1)).view(c, a.shape[1], -1)
        last = len(self.weights) - 1
        for i in range(1, last + 1):
            h = torch.baddbmm(self.biases[i], h, self.weights[i])
            if i < last:
                h = F.relu(h)
        return h.reshape(c, *lead)


class OptimiserSet:
    """Named optimisers that save and restore as one state dict (the trainer keeps one `opt`)."""

    def __init__(self, **optimisers: torch.optim.Optimizer):
        self.optimisers = optimisers

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        return self.optimisers[name]

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimisers.items()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self.optimisers):
            raise ValueError(f"optimiser state for {sorted(state)}, expected {sorted(self.optimisers)}")
        for name, opt in self.optimisers.items():
            opt.load_state_dict(state[name])


@torch.no_grad()
def polyak(target: nn.Module, online: nn.Module, tau: float) -> None:
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o, tau)
