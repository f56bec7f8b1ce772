"""The per-agent network every discrete policy here uses (behaviour, BC, MACQL Q-networks).

Parameters are shared across agents; a one-hot agent id tells them apart (the standard pymarl
choice). Feed-forward: LOGO samples individual transitions, not episodes, so there is no RNN
(`--agent gru` uses the recurrent models/gru_agent.py instead, on whole episodes).
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    dims = [in_dim] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        mods += [nn.Linear(a, b), act()]
    mods.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*mods)


class AgentNet(nn.Module):
    """obs [B,N,O] -> one output per action [B,N,A] (Q-values or logits, as the owner decides)."""

    def __init__(self, obs_dim: int, n_agents: int, n_actions: int, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.n_agents = n_agents
        self.net = mlp(obs_dim + n_agents, hidden, layers, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        ids = torch.eye(self.n_agents, device=obs.device, dtype=obs.dtype)
        ids = ids.expand(*obs.shape[:-2], self.n_agents, self.n_agents)
        return self.net(torch.cat([obs, ids], dim=-1))


def masked_greedy(values: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """argmax over available actions only. values [...,A], avail [...,A] bool -> [...] int64."""
    return values.masked_fill(~avail, float("-inf")).argmax(dim=-1)


def masked_sample(
    logits: torch.Tensor, avail: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample from softmax(logits) restricted to available actions. -> [...] int64."""
    probs = torch.softmax(logits.masked_fill(~avail, float("-inf")), dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
