"""MA-TD3+BC for continuous actions (MaMuJoCo): Fujimoto & Gu 2021, per agent.

The multi-agent form of OMAR's and OMIGA's TD3+BC baselines: every agent i has a deterministic actor
π(o_i) = tanh(f(o_i)) and twin critics Q_k(o_i, a_i), trained on the team reward; parameters shared
across agents (one-hot agent id), observations standardised with the real data's statistics.

  a'    = clip(π̄(o'_i) + clip(N(0, σ²), −c, c), −1, 1)        σ = policy_noise, c = noise_clip
  y     = r + γ (1 − terminated) · min_k Q̄_k(o'_i, a')
  critic: Σ_k mean (Q_k(o_i, a_i) − y)²                         every step
  actor : −λ · mean Q_1(o_i, π(o_i)) + mean (π(o_i) − a_i)²,   λ = α / mean |Q_1(o_i, π(o_i))| (no grad)
          every `policy_delay` steps, followed by Polyak updates (τ) of the target actor and critics.

The BC term is the data's; on synthetic rows it follows `cql_synthetic`: "none" (default) regularises
towards real rows' actions only (model rows enter the critic's TD loss and the actor's Q term),
"data" towards every row's action.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from logo_cli.algos.continuous_actor import ObsNorm, OptimiserSet, TwinCritic, polyak
from logo_cli.algos.macql_continuous import _targets
from logo_cli.data.transitions import Dims
from logo_cli.models.agent_net import AgentNet


@dataclass(frozen=True)
class Td3bcConfig:
    gamma: float = 0.99
    alpha: float = 2.5  # α of λ = α / mean |Q|
    policy_noise: float = 0.2  # std of the target policy smoothing noise
    noise_clip: float = 0.5  # its clip
    policy_delay: int = 2  # critic steps per actor (and target) update
    target_tau: float = 0.005  # Polyak factor of the target actor and critics
    bc_synthetic: Literal["none", "data"] = "none"  # BC towards synthetic rows' actions too ("data")


class Td3bcNets(nn.Module):
    def __init__(self, dims: Dims, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.dims = dims
        self.norm = ObsNorm(dims.obs_dim)
        self.actor = AgentNet(dims.obs_dim, dims.n_agents, dims.n_actions, hidden, layers)
        self.critic = TwinCritic(dims.obs_dim, dims.n_actions, dims.n_agents, hidden, layers)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # the last actor step's losses, reported on the critic-only steps in between (and resumed)
        self.register_buffer("last_actor", torch.zeros(3))

    def optimisers(self, actor_lr: float, critic_lr: float) -> OptimiserSet:
        return OptimiserSet(
            critic=torch.optim.Adam(self.critic.parameters(), lr=critic_lr),
            actor=torch.optim.Adam(self.actor.parameters(), lr=actor_lr),
        )


def td3bc_actor_loss(
    q_pi: torch.Tensor, pi: torch.Tensor, actions: torch.Tensor, alpha: float, bc_rows: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """−λ mean Q + mean (π − a)² with λ = α / mean |Q| (detached). q_pi [B,N], pi / actions [B,N,Ad],
    bc_rows [B] bool (rows the BC term averages over) or None (all). -> (loss, λ, bc term)."""
    lam = alpha / q_pi.abs().mean().detach().clamp_min(1e-6)
    sq = (pi - actions).pow(2)
    bc = sq.mean() if bc_rows is None else sq[bc_rows].mean() if bool(bc_rows.any()) else sq.sum() * 0.0
    return -lam * q_pi.mean() + bc, lam, bc


def td3bc_update(
    nets: Td3bcNets,
    opt: OptimiserSet,
    batch: dict[str, torch.Tensor],
    cfg: Td3bcConfig,
    step: int,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One critic step, plus an actor step and target update every `policy_delay` steps (`step` counts
    from 1). Returns detached parts (loss = critic loss + the last actor loss, for the NaN guard)."""
    next_obs, reward, discount, done = _targets(batch, cfg.gamma)
    obs_n, next_n = nets.norm(batch["obs"]), nets.norm(next_obs)
    actions = batch["actions"].clamp(-1.0, 1.0)
    with torch.no_grad():
        noise = torch.randn(actions.shape, generator=generator, device=actions.device) * cfg.policy_noise
        a_next = torch.tanh(nets.target_actor(next_n)) + noise.clamp(-cfg.noise_clip, cfg.noise_clip)
        q_next = nets.target_critic(next_n, a_next.clamp(-1.0, 1.0)).amin(0)  # [B,N]
        not_done = (1.0 - done.to(q_next.dtype)).unsqueeze(-1)
        target = reward.unsqueeze(-1) + discount * not_done * q_next
    q = nets.critic(obs_n, actions)  # [2,B,N]
    critic_loss = (q - target).pow(2).mean(dim=(1, 2)).sum()
    opt["critic"].zero_grad(set_to_none=True)
    critic_loss.backward()
    opt["critic"].step()
    if step % cfg.policy_delay == 0:
        pi = torch.tanh(nets.actor(obs_n))
        nets.critic.requires_grad_(False)
        try:
            q_pi = nets.critic(obs_n, pi)[0]
        finally:
            nets.critic.requires_grad_(True)
        synthetic = batch.get("synthetic")
        bc_rows = None if synthetic is None or cfg.bc_synthetic == "data" else ~synthetic
        actor_loss, lam, bc = td3bc_actor_loss(q_pi, pi, actions, cfg.alpha, bc_rows)
        opt["actor"].zero_grad(set_to_none=True)
        actor_loss.backward()
        opt["actor"].step()
        polyak(nets.target_critic, nets.critic, cfg.target_tau)
        polyak(nets.target_actor, nets.actor, cfg.target_tau)
        nets.last_actor.copy_(torch.stack([actor_loss.detach(), lam.detach(), bc.detach()]))
    actor_loss, lam, bc = nets.last_actor
    return {
        "loss": critic_loss.detach() + actor_loss,
        "td_loss": critic_loss.detach(),
        "actor_loss": actor_loss.clone(),
        "bc_loss": bc.clone(),
        "lambda": lam.clone(),
        "q": q.detach().mean(),
        "target": target.mean(),
    }
