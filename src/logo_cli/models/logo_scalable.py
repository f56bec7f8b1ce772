"""The inputs of LOGO's networks for many agents (`arch="pooled"`); docs/world-model.md, "Many agents".

The concatenating layout (`arch="concat"`) gives every agent's local model the whole normalised state
and the one-hot joint action, and the deductive model and the auxiliary encoder the concatenation
of every agent's raw next observation: their input widths, parameters and cost grow with the
square of the team (on SMAX 27m_vs_30m a local input of 2,400 numbers per agent, a deductive input
of 20,000). Here every width an agent adds is a constant:

- the state is encoded once per joint step (`state_enc`, an MLP to `latent` numbers) and that code
  is broadcast to the agents;
- one local network is shared by the agents (an agent-id one-hot in its input); its observation
  enters through a linear projection to `rank` numbers (`obs_proj`), and its decoder reaches the
  observation-wide outputs through a `rank`-wide layer (`WideHead`): an agent's observation is read
  and written by maps of rank `rank` (the cost of an agent grows with O by `rank`, not `hidden`);
- the joint action enters as the sum over agents of an embedding of each agent's action (a table per
  agent, so which agent did what stays readable: a linear map of the one-hot joint action to `latent`
  numbers), computed once per joint step and broadcast, with the agent's own action beside it
  (`local_action="joint"`); with `local_action="own"` only its own action;
- the deductive model encodes each agent's (next obs, its change, agent id) with one shared network
  (one hidden layer, `rank` wide) to `latent` numbers; the set of these codes is read in agent order (their
  concatenation, `N x latent`) and pooled (mean and max), beside its own code of the state. The
  auxiliary encoder reads the local latents the same way, beside the local model's state code.

The networks after these inputs (encoders, decoders, heads) are the concatenating layout's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from logo_cli.choices import LogoArch, values
from logo_cli.data.transitions import Dims
from logo_cli.models.layers import BatchedLinear, BatchedMLP

ARCHS = values(LogoArch)


def set_code(codes: torch.Tensor, state_code: torch.Tensor) -> torch.Tensor:
    """Per-agent codes [B,N,Z] and a state code [B,Zs] -> [B, N*Z + 2Z + Zs]: the codes in agent
    order (the state's features are per unit, so which agent said what matters), their mean and max
    (order-free summaries), and the state code."""
    return torch.cat([codes.flatten(1), codes.mean(1), codes.amax(1), state_code], dim=-1)


def set_code_dim(n_agents: int, latent: int) -> int:
    return n_agents * latent + 3 * latent


class WideHead(nn.Module):
    """latent -> `layers` hidden (SiLU) -> a linear `rank`-wide layer -> `out` outputs: a wide output
    (an agent's whole observation) reached through a low-rank map. `cols` as in BatchedMLP."""

    def __init__(self, in_dim: int, hidden: int, layers: int, rank: int, out_dim: int):
        super().__init__()
        self.body = BatchedMLP(1, in_dim, hidden, layers, rank)
        self.out = BatchedLinear(1, rank, out_dim)

    def forward(self, x: torch.Tensor, cols: int | None = None) -> torch.Tensor:
        return self.out(self.body(x), cols)


class PooledInputs(nn.Module):
    """The encoders that turn (obs, state, actions) into the pooled layout's network inputs."""

    def __init__(self, dims: Dims, hidden: int, latent: int, local_action: str, ded_delta: bool, rank: int):
        super().__init__()
        n, o, s = dims.n_agents, dims.obs_dim, dims.state_dim
        act = dims.n_actions  # an agent's one-hot (discrete) or action vector (continuous)
        self.state_enc = BatchedMLP(1, s, hidden, 1, latent)
        self.obs_proj = BatchedLinear(1, o, rank)
        self.act_emb = BatchedLinear(1, n * act, latent) if local_action == "joint" else None
        self.local_in = rank + latent + act + n + (latent if self.act_emb is not None else 0)
        self.ded_delta = ded_delta
        self.ded_phi = BatchedMLP(1, (2 if ded_delta else 1) * o + n, rank, 1, latent)
        self.ded_state_enc = BatchedMLP(1, s, hidden, 1, latent)
        self.set_in = set_code_dim(n, latent)

    def local(
        self, obs_n: torch.Tensor, state_n: torch.Tensor, act: torch.Tensor
    ) -> list[torch.Tensor | None]:
        """Normalised obs [B,N,O], state [B,S], encoded joint action [B,N*A] -> the local input's
        parts (`local_in` wide together; BatchedLinear.forward_parts): the projected obs, the state
        code [B,1,.] shared by the agents, the own action, the agent id (None) and the joint-action
        embedding [B,1,.]."""
        b, n = obs_n.shape[:2]
        parts = [self.obs_proj(obs_n), self.state_enc(state_n).unsqueeze(1), act.reshape(b, n, -1), None]
        if self.act_emb is not None:  # sum over agents of agent-specific action embeddings
            parts.append(self.act_emb(act).unsqueeze(1))
        return parts

    def deductive(self, nobs_n: torch.Tensor, dobs_n: torch.Tensor, state_n: torch.Tensor) -> torch.Tensor:
        """Normalised next obs and changes [B,N,O], state [B,S] -> [B, set_in]."""
        parts = [nobs_n, dobs_n] if self.ded_delta else [nobs_n]
        codes = F.silu(self.ded_phi.forward_parts([*parts, None]))
        return set_code(codes, self.ded_state_enc(state_n))

    def aux(self, z: torch.Tensor, state_n: torch.Tensor) -> torch.Tensor:
        """Local latents [B,N,Z], state [B,S] -> [B, set_in]."""
        return set_code(z, self.state_enc(state_n))
