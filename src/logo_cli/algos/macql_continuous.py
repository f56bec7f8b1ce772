"""MA-CQL for continuous actions (MaMuJoCo): per-agent SAC actors and critics with a per-agent CQL term.

Kumar et al. 2020's continuous CQL(H) (SAC backbone, importance-sampled logsumexp), lifted to teams
as in OMAR's MA-CQL baseline (Pan et al. 2022) and OMIGA's: every agent i has a tanh-Gaussian actor
π(a_i | o_i) and twin critics Q_k(o_i, a_i), k = 1, 2, all trained on the team reward; parameters are
shared across agents (AgentNet / TwinCritic with a one-hot agent id), observations standardised with
the real data's statistics. Per agent and batch row, with K = `cql_samples` draws from each source:

  y        = r + γ (1 − terminated) · min_k Q̄_k(o'_i, a'),  a' ~ π(· | o'_i)      (no entropy term)
  td       = Σ_k mean (Q_k(o_i, a_i) − y)²
  lse_k    = logsumexp( [Q_k(o_i, u_j) + Ad·log 2]_j ∪ [Q_k(o_i, a_j) − log π(a_j|o_i)]_j
                        ∪ [Q_k(o_i, a'_j) − log π(a'_j|o'_i)]_j )     u_j ~ U[−1, 1]^Ad, a_j, a'_j ~ π
  critic   = td + α_cql · Σ_k mean(lse_k − Q_k(o_i, a_i))
  actor    = mean(α · log π(a|o_i) − min_k Q_k(o_i, a)),  a ~ π(· | o_i) reparameterised
             (the first `bc_steps` steps: mean(α · log π(a|o_i) − log π(a_data|o_i)) on real rows,
             behaviour cloning while the critics settle: the reference code's policy_eval_start)
  α        = exp(log α), tuned towards the target entropy −Ad per agent (or fixed, `entropy_alpha`)

with the target critics moved by Polyak averaging (`target_tau`) every `target_update_every` steps.
The logsumexp is CQL(H)'s log ∫ exp Q(o, a) da estimated by importance sampling from the uniform
and the current policy (at o and at o'), the proposal densities divided out, as in the reference
code (no −log 3K: a constant without gradient). How the CQL term treats synthetic rows
(`cql_synthetic`: none / data / combo) is the discrete MACQL's rule (`_conservative_term`), applied to
each row's agent-mean of lse − Q(data).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from logo_cli.algos.continuous_actor import (
    ObsNorm,
    OptimiserSet,
    TwinCritic,
    polyak,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
)
from logo_cli.algos.macql import CqlSynthetic, _conservative_term
from logo_cli.data.transitions import Dims
from logo_cli.models.agent_net import AgentNet
from logo_cli.policies.actor_policy import split_gaussian


@dataclass(frozen=True)
class ContinuousCqlConfig:
    gamma: float = 0.99
    cql_alpha: float = 1.0  # weight of the CQL term (Kumar et al.'s min_q_weight)
    cql_samples: int = 10  # draws per source (uniform, π at o, π at o') in the logsumexp
    target_update_every: int = 1  # steps between Polyak updates of the target critics
    target_tau: float = 0.005  # Polyak factor
    entropy_alpha: float | None = None  # fixed SAC temperature; None: tuned towards target_entropy
    target_entropy: float | None = None  # per agent; None: −(action entries per agent)
    cql_synthetic: CqlSynthetic = "none"
    bc_steps: int = 0  # first steps whose actor loss clones the real rows' actions instead of max Q


class ContinuousCqlNets(nn.Module):
    """Actor, twin critics, target critics, the SAC temperature and the observation standardisation
    (one state_dict for checkpoints)."""

    def __init__(self, dims: Dims, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.dims = dims
        self.norm = ObsNorm(dims.obs_dim)
        self.actor = AgentNet(dims.obs_dim, dims.n_agents, 2 * dims.n_actions, hidden, layers)
        self.critic = TwinCritic(dims.obs_dim, dims.n_actions, dims.n_agents, hidden, layers)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(()))

    def optimisers(self, actor_lr: float, critic_lr: float) -> OptimiserSet:
        return OptimiserSet(
            critic=torch.optim.Adam(self.critic.parameters(), lr=critic_lr),
            actor=torch.optim.Adam(self.actor.parameters(), lr=actor_lr),
            alpha=torch.optim.Adam([self.log_alpha], lr=actor_lr),
        )


def cql_logsumexp(
    q_rand: torch.Tensor,
    q_pi: torch.Tensor,
    logp_pi: torch.Tensor,
    q_next_pi: torch.Tensor,
    logp_next_pi: torch.Tensor,
    n_actions: int,
) -> torch.Tensor:
    """The importance-sampled logsumexp of CQL(H) per agent: each input [K, ...] (Q of the K uniform
    draws, of the K policy draws at o with their log-probs, of the K policy draws at o' with theirs);
    the uniform density on [−1, 1]^Ad is 2^−Ad. -> [...]"""
    log_uniform = -n_actions * math.log(2.0)
    terms = torch.cat([q_rand - log_uniform, q_pi - logp_pi, q_next_pi - logp_next_pi], dim=0)
    return torch.logsumexp(terms, dim=0)


def _targets(batch: dict[str, torch.Tensor], gamma: float):
    """(next obs, reward, discount, done) of the one-step or n-step target."""
    if "reward_n" in batch:
        return batch["boot_obs"], batch["reward_n"], batch["gamma_n"], batch["done_n"]
    return batch["next_obs"], batch["reward"], gamma, batch["terminated"]


def continuous_cql_update(
    nets: ContinuousCqlNets,
    opt: OptimiserSet,
    batch: dict[str, torch.Tensor],
    cfg: ContinuousCqlConfig,
    step: int,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One gradient step of critics, actor and temperature; `step` counts from 1 and schedules the
    target update. Returns detached parts (loss = critic loss + actor loss, for the NaN guard)."""
    n_act = nets.dims.n_actions
    k = cfg.cql_samples
    next_obs, reward, discount, done = _targets(batch, cfg.gamma)
    obs_n, next_n = nets.norm(batch["obs"]), nets.norm(next_obs)
    b = obs_n.shape[0]
    # the simulator clips actions to [-1, 1]: the data action is the clipped one
    actions = batch["actions"].clamp(-1.0, 1.0)
    with torch.no_grad():
        mean, log_std = split_gaussian(nets.actor(torch.cat([obs_n, next_n])))
        a_pi, logp_pi = tanh_gaussian_sample(mean, log_std, k, generator)  # [K,2B,N,Ad], [K,2B,N]
        q_next = nets.target_critic(next_n, a_pi[0, b:]).amin(0)  # [B,N]
        not_done = (1.0 - done.to(q_next.dtype)).unsqueeze(-1)
        target = reward.unsqueeze(-1) + discount * not_done * q_next
        rand = torch.rand((k, *actions.shape), generator=generator, device=actions.device) * 2.0 - 1.0
    # one critic pass over the data action, the uniform draws and the policy draws at o and o'
    acts = torch.cat([actions.unsqueeze(0), rand, a_pi[:, :b], a_pi[:, b:]])  # [1+3K,B,N,Ad]
    q = nets.critic(obs_n, acts)  # [2,1+3K,B,N]
    q_data = q[:, 0]
    td_loss = (q_data - target).pow(2).mean(dim=(1, 2)).sum()
    critic_loss = td_loss
    parts: dict[str, torch.Tensor] = {}
    if cfg.cql_alpha > 0:
        lse = cql_logsumexp(
            q[:, 1 : 1 + k].transpose(0, 1),
            q[:, 1 + k : 1 + 2 * k].transpose(0, 1),
            logp_pi[:, :b].unsqueeze(1),
            q[:, 1 + 2 * k :].transpose(0, 1),
            logp_pi[:, b:].unsqueeze(1),
            n_act,
        )  # [2,B,N]
        synthetic = batch.get("synthetic")
        gap = sum(
            _conservative_term(lse[c].mean(-1), q_data[c].mean(-1), synthetic, cfg.cql_synthetic)
            for c in range(q.shape[0])
        )
        critic_loss = critic_loss + cfg.cql_alpha * gap
        parts["cql_gap"] = gap.detach()
    opt["critic"].zero_grad(set_to_none=True)
    critic_loss.backward()
    opt["critic"].step()

    # actor and temperature, on the critics just updated (their parameters frozen for this pass)
    mean, log_std = split_gaussian(nets.actor(obs_n))
    a_new, logp = tanh_gaussian_sample(mean, log_std, None, generator)  # [B,N,Ad], [B,N]
    alpha = (
        nets.log_alpha.detach().exp()
        if cfg.entropy_alpha is None
        else torch.tensor(cfg.entropy_alpha, device=logp.device)
    )
    if step <= cfg.bc_steps:
        # log π(a_data | o): the data action's pre-tanh value, kept inside (−1, 1) so atanh is finite
        u_data = torch.atanh(actions.clamp(-1.0 + 1e-6, 1.0 - 1e-6))
        per_row = alpha * logp - tanh_gaussian_log_prob(u_data, mean, log_std)  # [B,N]
        synthetic = batch.get("synthetic")
        real = per_row if synthetic is None else per_row[~synthetic]
        actor_loss = real.mean() if real.numel() else per_row.new_zeros(())
    else:
        nets.critic.requires_grad_(False)
        try:
            q_new = nets.critic(obs_n, a_new).amin(0)
        finally:
            nets.critic.requires_grad_(True)
        actor_loss = (alpha * logp - q_new).mean()
    opt["actor"].zero_grad(set_to_none=True)
    actor_loss.backward()
    opt["actor"].step()
    if cfg.entropy_alpha is None:
        target_entropy = -float(n_act) if cfg.target_entropy is None else cfg.target_entropy
        alpha_loss = -(nets.log_alpha * (logp.detach() + target_entropy)).mean()
        opt["alpha"].zero_grad(set_to_none=True)
        alpha_loss.backward()
        opt["alpha"].step()
    if step % cfg.target_update_every == 0:
        polyak(nets.target_critic, nets.critic, cfg.target_tau)
    parts.update(
        {
            "loss": (critic_loss + actor_loss).detach(),
            "td_loss": td_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q": q_data.detach().mean(),
            "target": target.mean(),
            "alpha": alpha.detach(),
            "entropy": -logp.detach().mean(),
        }
    )
    return parts
