"""QMIX mixer: a monotonic mixing network whose weights are produced from the global state.

Rashid et al. 2018 (QMIX), as in the pymarl2 / CFCQL `nmix.Mixer`: hypernetworks map the state to
the mixing weights, whose absolute values make Q_tot non-decreasing in every agent's Q; an ELU
hidden layer; a state-dependent bias V(s) from a two-layer hypernetwork.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class QMixer(nn.Module):
    """Q_tot = |W2(s)|ᵀ elu(|W1(s)|ᵀ q + b1(s)) + V(s).

    forward(q [..., B, N], state [B, S]) -> [..., B]: any leading dims of q (e.g. K sampled joint
    actions) share one hypernetwork evaluation per state, which keeps the CQL term cheap.
    """

    def __init__(self, n_agents: int, state_dim: int, embed: int = 32, hypernet_embed: int = 64):
        super().__init__()
        self.n_agents = n_agents
        self.embed = embed
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, n_agents * embed)
        )
        self.hyper_b1 = nn.Linear(state_dim, embed)
        self.hyper_w2 = nn.Sequential(
            nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, embed)
        )
        self.hyper_v = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        b = state.shape[0]
        w1 = self.hyper_w1(state).abs().view(b, self.n_agents, self.embed)  # [B,N,E]
        b1 = self.hyper_b1(state).unsqueeze(1)  # [B,1,E]
        w2 = self.hyper_w2(state).abs().unsqueeze(-1)  # [B,E,1]
        v = self.hyper_v(state)  # [B,1]
        # Leading sample dims of q are folded next to N, so each state costs one (K×N)@(N×E)
        # product: far fewer, larger GEMMs than K·B products of a single row.
        lead = q.shape[:-2]
        qk = q.reshape(-1, b, self.n_agents).transpose(0, 1)  # [B,K,N]
        hidden = F.elu(torch.bmm(qk, w1) + b1)  # [B,K,E]
        out = torch.bmm(hidden, w2).squeeze(-1) + v  # [B,K]
        return out.transpose(0, 1).reshape(*lead, b)
