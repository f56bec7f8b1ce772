"""CFCQL: counterfactual conservative Q-learning for offline multi-agent RL (discrete actions).

Shao et al. 2023 ("Counterfactual Conservative Q Learning for Offline Multi-agent RL", code
thu-rllab/CFCQL, `cq_learner.py` with `moderate_lambda`). MACQL pushes Q_tot down on whole joint
actions, so its penalty grows with the number of agents; CFCQL instead perturbs one agent at a time
and keeps the others at their data actions:
  loss = ½ (Q_tot(s, a) − y)²
         + α · Σ_i λ_i(s) · (logsumexp_{j allowed for i} Q_tot(s, j, a_{−i}) − Q_tot(s, a))
  λ(s) = softmax_i(τ · KL(μ_i(·|s) ‖ β_i(·|o_i)))   (no gradient)
with μ_i the softmax over agent i's allowed actions of the counterfactual Q_tot(s, j, a_{−i}) (the
distribution that maximises the penalty's inner term, as in the reference code) and β_i a behaviour
policy fitted to the dataset by behaviour cloning before Q training. Agents whose current policy is
farthest from the data get the largest share of the penalty.

The TD part, target networks, mixer, state standardisation and the treatment of synthetic rows are
MACQL's (algos/macql.py); only the conservative term differs. Deviations from the reference code:
- the counterfactual Q_tot is enumerated for all N·A (agent, action) pairs in one batched mixer
  call instead of a Python loop over agents and actions (same values);
- the data action of each agent is always among its allowed actions, even where the dataset marks
  it unavailable (corrupt rows), so every agent's logsumexp has at least one finite term and the
  gap is >= 0;
- the KL uses exact masked log-softmaxes instead of adding 1e-5 to both probabilities;
- τ = 0 gives uniform λ = 1/N like the reference; its special value 100 (arg-max one-hot) is not
  special here (a large τ approaches it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from logo_cli.algos.bc import masked_log_probs
from logo_cli.algos.macql import MacqlConfig, MacqlNets, apply_update, conservative_q_loss
from logo_cli.data.transitions import Dims
from logo_cli.models.agent_net import AgentNet
from logo_cli.models.mixer import QMixer

# A finite "minus infinity" for actions outside the allowed set: exp() of it is exactly 0, and unlike
# -inf it gives no NaN in μ · (log μ − log β) where μ = 0.
_MASKED = -1e9


@dataclass(frozen=True)
class CfcqlConfig(MacqlConfig):
    # τ of λ = softmax_i(τ · KL_i): 0 spreads the penalty evenly over agents, larger values put it on
    # the agent farthest from the behaviour policy. The reference's cql_qmix.yaml default is 5 (its
    # per-map tuned values are 0-1).
    temperature: float = 5.0


class CfcqlNets(MacqlNets):
    """MACQL's networks plus a frozen behaviour-cloning policy β (logits over actions), which is part
    of the state_dict and so travels with checkpoints: a resumed run uses the same β."""

    def __init__(
        self, dims: Dims, hidden: int = 128, layers: int = 2, mixer_embed: int = 32, hypernet_embed: int = 64
    ):
        super().__init__(dims, hidden, layers, mixer_embed, hypernet_embed)
        self.behaviour = AgentNet(dims.obs_dim, dims.n_agents, dims.n_actions, hidden, layers)
        self.behaviour.requires_grad_(False)

    @torch.no_grad()
    def set_behaviour(self, net: AgentNet) -> None:
        """Copy a trained BC network (logits mode, same sizes) into the frozen behaviour slot."""
        self.behaviour.load_state_dict(net.state_dict())


def allowed_actions(avail: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Each agent's available actions plus its data action: [B,N,A] bool."""
    data = torch.nn.functional.one_hot(actions, avail.shape[-1]).bool()
    return avail | data


def counterfactual_q_tot(
    q_agents: torch.Tensor, actions: torch.Tensor, state: torch.Tensor, mixer: QMixer
) -> torch.Tensor:
    """Q_tot(s, a_i = j, a_{−i}) for every agent i and action j: [B,N,A] (no masking).

    Entry (i, j) is Q_tot of the data joint action's per-agent Qs with agent i's replaced by
    Q_i(o_i, j); the mixer computes all N·A of them from one hypernetwork pass per state.
    """
    q_data = q_agents.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [B,N]
    return mixer.one_agent_replaced(q_data, q_agents, state)


@torch.no_grad()
def agent_weights(
    q_cf: torch.Tensor, behaviour_logits: torch.Tensor, allowed: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """λ = softmax_i(τ · KL(μ_i ‖ β_i)) per row, and the KLs; both [B,N].

    μ_i: softmax of the counterfactual Q_tot over agent i's allowed actions; β_i: the behaviour
    policy's softmax over the same actions."""
    log_mu = torch.log_softmax(q_cf.masked_fill(~allowed, _MASKED), dim=-1)
    log_beta = masked_log_probs(behaviour_logits, allowed)
    kl = (log_mu.exp() * (log_mu - log_beta)).masked_fill(~allowed, 0.0).sum(-1)  # [B,N]
    return torch.softmax(temperature * kl, dim=-1), kl


def counterfactual_term(
    nets: MacqlNets,
    q_agents: torch.Tensor,
    state: torch.Tensor,
    batch: dict[str, torch.Tensor],
    cfg: MacqlConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """CFCQL's conservative term for `conservative_q_loss`: (Q_tot(data) [B], Σ_i λ_i lse_i [B], parts).

    Exact, so `generator` is unused. As Σ_i λ_i = 1, Σ_i λ_i lse_i − Q_tot(data) is the λ-weighted
    sum of the per-agent gaps, and the synthetic-row options apply to it unchanged."""
    assert isinstance(nets, CfcqlNets) and isinstance(cfg, CfcqlConfig)
    actions = batch["actions"]
    allowed = allowed_actions(batch["avail_actions"], actions)
    q_cf = counterfactual_q_tot(q_agents, actions, state, nets.mixer)  # [B,N,A]
    # Q_tot of the data action is agent 0's counterfactual at j = a_0: no extra mixer pass.
    q_tot = q_cf[:, 0].gather(-1, actions[:, :1]).squeeze(-1)
    lse = torch.logsumexp(q_cf.masked_fill(~allowed, _MASKED), dim=-1)  # [B,N]
    with torch.no_grad():
        lam, kl = agent_weights(q_cf.detach(), nets.behaviour(batch["obs"]), allowed, cfg.temperature)
    parts = {"lambda_max": lam.max(-1).values.mean(), "behaviour_kl": kl.mean()}
    return q_tot, (lam * lse).sum(-1), parts


def cfcql_loss(
    nets: CfcqlNets,
    batch: dict[str, torch.Tensor],
    cfg: CfcqlConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The CFCQL loss on one batch; parts as MACQL's (cql_gap is the λ-weighted counterfactual gap)
    plus lambda_max (mean of the largest agent weight) and behaviour_kl (mean KL(μ_i ‖ β_i))."""
    return conservative_q_loss(nets, batch, cfg, counterfactual_term, generator)


def cfcql_update(
    nets: CfcqlNets,
    optimiser: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    cfg: CfcqlConfig,
    step: int,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One CFCQL gradient step; `step` counts from 1 and schedules the target update."""
    loss, parts = cfcql_loss(nets, batch, cfg, generator)
    return apply_update(nets, optimiser, loss, parts, cfg, step)
