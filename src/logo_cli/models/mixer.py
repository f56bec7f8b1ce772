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

    def weights(self, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The state's mixing weights: |W1| [B,N,E], b1 [B,1,E], |W2| [B,E,1], V [B,1]."""
        b = state.shape[0]
        w1 = self.hyper_w1(state).abs().view(b, self.n_agents, self.embed)
        b1 = self.hyper_b1(state).unsqueeze(1)
        w2 = self.hyper_w2(state).abs().unsqueeze(-1)
        return w1, b1, w2, self.hyper_v(state)

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        b = state.shape[0]
        w1, b1, w2, v = self.weights(state)
        # Leading sample dims of q are folded next to N, so each state costs one (K×N)@(N×E)
        # product: far fewer, larger GEMMs than K·B products of a single row.
        lead = q.shape[:-2]
        qk = q.reshape(-1, b, self.n_agents).transpose(0, 1)  # [B,K,N]
        hidden = F.elu(torch.bmm(qk, w1) + b1)  # [B,K,E]
        out = torch.bmm(hidden, w2).squeeze(-1) + v  # [B,K]
        return out.transpose(0, 1).reshape(*lead, b)

    def one_agent_replaced(
        self, q_data: torch.Tensor, q_alt: torch.Tensor, state: torch.Tensor
    ) -> torch.Tensor:
        """Q_tot with one agent's Q replaced, for every agent i and alternative j: [B,N,A].

        q_data [B,N] (the joint action's Qs), q_alt [B,N,A] (agent i's Q for action j). The first
        layer is linear in q, so replacing agent i's Q moves its input by (q_alt − q_data)_i · W1_i:
        N·A multiply-adds per state and hidden unit instead of N·A products with all N agents
        (CFCQL's counterfactual term at 27 agents: 945 joint actions per state).
        """
        b = state.shape[0]
        w1, b1, w2, v = self.weights(state)
        base = torch.bmm(q_data.unsqueeze(1), w1) + b1  # [B,1,E]
        delta = (q_alt - q_data.unsqueeze(-1)).unsqueeze(-1)  # [B,N,A,1]
        hidden = F.elu(base.unsqueeze(1) + delta * w1.unsqueeze(2))  # [B,N,A,E]
        out = torch.matmul(hidden.view(b, -1, self.embed), w2).view(q_alt.shape)  # [B,N,A]
        return out + v.view(b, 1, 1)
