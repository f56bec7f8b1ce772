"""Independent CQL (`--algo icql`, discrete actions): CQL(H) (Kumar et al. 2020) on each agent's own Q
with the team reward and no mixer, the independent-learner ablation of offline MARL papers (the
IQL+CQL baseline of OG-MARL, Formanek et al. 2023). Per agent i and row:

  y_i  = r + γ (1 − terminated) · Q̄_i(o'_i, argmax_{a available} Q_i(o'_i, a))     (double Q)
  loss = mean_i ½ (Q_i(o_i, a_i) − y_i)²  +  α · mean_i (logsumexp_{a available} Q_i(o_i, a) − Q_i(o_i, a_i))

Deviations from OG-MARL's baseline: feed-forward agents (AgentNet, shared parameters + one-hot agent
id) on single transitions instead of recurrent ones on sequences; the logsumexp is exact over the
agent's available actions (an agent's action set is small), so --cql-samples and
--cql-with-data/--cql-samples-only do not apply; the run's n-step targets, target-network schedule,
gradient clipping (10) and treatment of synthetic rows in the CQL term (`cql_synthetic`) are MACQL's
(algos/macql.py). Acts greedily over its Qs (policy mode "q", no mixer in the policy file).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from logo_cli.algos.macql import CqlSynthetic, _conservative_term
from logo_cli.data.transitions import Dims, Transitions
from logo_cli.models.agent_net import AgentNet, masked_greedy
from logo_cli.train.learners.base import Learner, Options


@dataclass(frozen=True)
class IcqlConfig:
    gamma: float = 0.99  # discount (unused with n-step rows: they carry their own γ^k)
    cql_alpha: float = 1.0  # weight α of the CQL term
    target_update_every: int = 200  # steps between target-network updates
    target_tau: float = 1.0  # Polyak factor of each target update (1 = hard copy)
    grad_clip: float = 10.0  # max global gradient norm; 0 disables clipping
    cql_synthetic: CqlSynthetic = "none"  # CQL on synthetic rows: as data, COMBO-style, or not at all


class IcqlNets(nn.Module):
    """Per-agent Q network and its target copy."""

    def __init__(self, dims: Dims, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.agent = AgentNet(dims.obs_dim, dims.n_agents, dims.n_actions, hidden=hidden, layers=layers)
        self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)


def icql_loss(
    nets: IcqlNets, batch: dict[str, torch.Tensor], cfg: IcqlConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss above on one batch of transitions; parts detached (td_loss, cql_gap before α, q, target)."""
    if "reward_n" in batch:  # n-step rows (data/nstep.py): bootstrap k steps ahead
        obs, avail = batch["boot_obs"], batch["boot_avail"]
        reward, discount, done = batch["reward_n"], batch["gamma_n"], batch["done_n"]
    else:
        obs, avail = batch["next_obs"], batch["next_avail_actions"]
        reward, discount, done = batch["reward"], cfg.gamma, batch["terminated"]
    with torch.no_grad():
        best = masked_greedy(nets.agent(obs), avail)  # [B,N]
        q_next = nets.target_agent(obs).gather(-1, best.unsqueeze(-1)).squeeze(-1)
        target = reward[:, None] + (discount * (1.0 - done.to(q_next.dtype)))[:, None] * q_next  # [B,N]
    q = nets.agent(batch["obs"])  # [B,N,A]
    q_data = q.gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)  # [B,N]
    td_loss = 0.5 * (q_data - target).pow(2).mean()
    # the data action always counts, even where a corrupt row marks it unavailable: the gap stays >= 0
    allowed = batch["avail_actions"].scatter(-1, batch["actions"].unsqueeze(-1), True)
    lse = torch.logsumexp(q.masked_fill(~allowed, float("-inf")), dim=-1)  # [B,N]
    # per row, the agents' mean (lse − Q(data)): the rule for synthetic rows is MACQL's, per row
    gap = _conservative_term(lse.mean(-1), q_data.mean(-1), batch.get("synthetic"), cfg.cql_synthetic)
    loss = td_loss + cfg.cql_alpha * gap
    parts = {"loss": loss.detach(), "td_loss": td_loss.detach(), "cql_gap": gap.detach(),
             "q": q_data.detach().mean(), "target": target.mean()}  # fmt: skip
    return loss, parts


def icql_update(nets: IcqlNets, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor], cfg: IcqlConfig,
                step: int) -> dict[str, torch.Tensor]:  # fmt: skip
    """One gradient step; `step` counts from 1 and schedules the target update."""
    loss, parts = icql_loss(nets, batch, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        parts["grad_norm"] = nn.utils.clip_grad_norm_(nets.agent.parameters(), cfg.grad_clip).detach()
    opt.step()
    if step % cfg.target_update_every == 0:
        with torch.no_grad():
            for t, o in zip(nets.target_agent.parameters(), nets.agent.parameters(), strict=True):
                t.lerp_(o, cfg.target_tau)
    return parts


class IcqlLearner(Learner):
    n_step = True
    mode = "q"
    nets: IcqlNets

    def __init__(self, dims: Dims, real: Transitions, opts: Options):
        super().__init__(dims, real, opts)
        self.cfg = IcqlConfig(
            gamma=opts.gamma,
            cql_alpha=opts.cql_alpha,
            target_update_every=opts.target_update_every,
            target_tau=opts.target_tau,
            cql_synthetic=opts.cql_synthetic,
        )

    def build(self, real: Transitions) -> nn.Module:
        return IcqlNets(self.dims, self.opts.hidden, self.opts.layers)

    def optimiser(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.nets.agent.parameters(), lr=self.opts.lr)

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        return icql_update(self.nets, self.opt, batch, self.cfg, step)

    def agent(self) -> nn.Module:
        return self.nets.agent
