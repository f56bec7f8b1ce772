"""The recurrent per-agent Q network (pymarl's RNNAgent): fc → GRU → fc, shared across agents.

Input per agent and step: its observation, its previous action (one-hot; zeros at an episode's first
step) and its one-hot id. The hidden state (64 wide by default, as in pymarl and CFCQL) carries the
episode so far; it starts at zeros at every episode start. The GRU is an `nn.GRU` of one layer, which
has exactly the parameters of a `GRUCell`: training unrolls it over whole sequences in one call,
acting steps it one step at a time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GRUAgent(nn.Module):
    """(obs [B,T,N,O], last action one-hot [B,T,N,A], h [B,N,H] or None) -> (Q [B,T,N,A], h [B,N,H])."""

    def __init__(self, obs_dim: int, n_agents: int, n_actions: int, hidden: int = 64):
        super().__init__()
        self.n_agents, self.n_actions, self.hidden = n_agents, n_actions, hidden
        self.fc1 = nn.Linear(obs_dim + n_actions + n_agents, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.fc2 = nn.Linear(hidden, n_actions)

    def initial_state(self, batch: int, device=None) -> torch.Tensor:
        return torch.zeros(batch, self.n_agents, self.hidden, device=device)

    def forward(
        self, obs: torch.Tensor, last_action: torch.Tensor, h: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, n, _ = obs.shape
        ids = torch.eye(n, device=obs.device, dtype=obs.dtype).expand(b, t, n, n)
        x = F.relu(self.fc1(torch.cat([obs, last_action.to(obs.dtype), ids], dim=-1)))  # [B,T,N,H]
        x = x.permute(0, 2, 1, 3).reshape(b * n, t, self.hidden)  # one sequence per (row, agent)
        h0 = None if h is None else h.reshape(1, b * n, self.hidden)
        y, hn = self.rnn(x, h0)
        q = self.fc2(y).view(b, n, t, self.n_actions).permute(0, 2, 1, 3)
        return q, hn.view(b, n, self.hidden)

    def step(
        self, obs: torch.Tensor, last_action: torch.Tensor, h: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step for a batch of teams: obs [B,N,O], last_action [B,N,A] -> (Q [B,N,A], h [B,N,H])."""
        q, h = self(obs.unsqueeze(1), last_action.unsqueeze(1), h)
        return q.squeeze(1), h
