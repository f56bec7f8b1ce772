"""MACQL: multi-agent conservative Q-learning with a QMIX mixer (discrete actions).

Kumar et al. 2020 (CQL) lifted to teams as in the CFCQL codebase's MACQL baseline (Shao et al. 2023,
thu-rllab/CFCQL, `cq_learner.py` with `raw_cql`), which LOGO uses as its backbone:
  Q_tot(s, a) = mixer(Q_1(o_1, a_1), ..., Q_N(o_N, a_N); s)
  loss = ½ (Q_tot(s, a_data) − y)²  +  α · (logsumexp_k Q_tot(s, a^k) − Q_tot(s, a_data))
  y = r + γ (1 − terminated) · Q̄_tot(s', argmax_{a' available} Q(o', a'))   (double Q)
with a^1..a^K joint actions drawn per agent uniformly among its available actions.

Deviations from CFCQL, all forced by LOGO sampling individual transitions rather than episodes:
- feed-forward agents (AgentNet, shared parameters + one-hot agent id), no RNN, and no last action in
  the input (transitions do not carry a_{t-1});
- one-step TD targets instead of TD(λ) (`--agent gru`, algos/recurrent.py, lifts these two: GRU
  agents on whole episodes, TD(λ) targets);
- CFCQL draws actions uniformly over all actions and zeroes the Q_tot of joint actions that contain an
  unavailable one (its `chosen_if_avail` product); here unavailable actions are never drawn at all,
  so every sample counts;
- the data joint action is one of the logsumexp terms (`cql_include_data`), which keeps the sampled
  gap >= 0 like the exact CQL(H) sum; CFCQL leaves it out;
- optionally (`cql_greedy`) the online greedy joint action is one more logsumexp term, as CQL's
  samples from the current policy: uniform joint actions almost never come near the per-agent
  argmax that the TD target bootstraps from once the team is large (35^27 joint actions on
  27m_vs_30m), so nothing pushed down the summed maximisation bias (docs/policy.md);
- the target network is updated by `target_tau`-Polyak every `target_update_every` steps
  (tau 1 = CFCQL's periodic hard copy);
- the state the mixer sees is standardised with the real data's mean and std (`MacqlNets.set_state_stats`):
  SMAC's state lies in [-1, 1], SMAX's raw state has features up to ~26, and the hypernetworks fed
  the raw state started Q_tot far above any return and kept the offset through the TD targets;
- n-step targets are precomputed per row (`reward_n`, `gamma_n`, `done_n`, `boot_*`, see
  data/nstep.py); with n = 1 they are the plain one-step target.
The conservative term is a function handed to `conservative_q_loss` (`sampled_cql_term` here,
CFCQL's counterfactual term in algos/cfcql.py), so both learners share the TD part, the synthetic-row
treatment and `apply_update`.
How CQL treats synthetic rows (`cql_synthetic`): "data" pushes their model-made actions up like real
ones (plain CQL on the mixed batch); "combo" pushes Q down on every row but up only on real rows'
actions, as COMBO does; "none" applies the CQL term to real rows only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from logo_cli.choices import CqlSynthetic as CqlSyntheticChoice
from logo_cli.choices import values
from logo_cli.data.transitions import Dims
from logo_cli.models.agent_net import AgentNet, masked_greedy
from logo_cli.models.mixer import QMixer

CqlSynthetic = Literal["data", "combo", "none"]
CQL_SYNTHETIC: tuple[str, ...] = values(CqlSyntheticChoice)
if set(get_args(CqlSynthetic)) != set(CQL_SYNTHETIC):
    raise ImportError("algos.macql's CqlSynthetic disagrees with logo_cli.choices")


@dataclass(frozen=True)
class MacqlConfig:
    gamma: float = 0.99  # discount of the TD target
    cql_alpha: float = 1.0  # weight α of the CQL term
    cql_samples: int = 32  # joint actions drawn per state for the logsumexp of the CQL term
    # Put the data joint action in the logsumexp too, so the gap is >= 0 as with the exact sum over
    # all joint actions. Without it (CFCQL's raw MACQL) the data action is rarely drawn, the gap
    # can fall without bound, and Q_tot of data actions diverged on SMAX 3m at alpha >= 1.
    cql_include_data: bool = True
    # Add the online greedy joint action (argmax over each agent's available actions, no gradient
    # through the choice) to the logsumexp: CQL(H)'s policy samples. Off by default: it cost 2-11
    # points on 3m and the published grids ran without it; measured in docs/policy.md ("Many agents").
    cql_greedy: bool = False
    target_update_every: int = 200  # steps between target-network updates
    target_tau: float = 1.0  # Polyak factor of each target update (1 = hard copy)
    grad_clip: float = 10.0  # max global gradient norm (pymarl default); 0 disables clipping
    cql_synthetic: CqlSynthetic = "none"  # CQL on synthetic rows: as data, COMBO-style, or not at all


class MacqlNets(nn.Module):
    """Per-agent Q network and QMIX mixer, with their target copies (one state_dict for resuming)."""

    def __init__(
        self, dims: Dims, hidden: int = 128, layers: int = 2, mixer_embed: int = 32, hypernet_embed: int = 64
    ):
        super().__init__()
        self.agent = AgentNet(dims.obs_dim, dims.n_agents, dims.n_actions, hidden=hidden, layers=layers)
        self.mixer_embed, self.hypernet_embed = mixer_embed, hypernet_embed
        self.mixer = QMixer(dims.n_agents, dims.state_dim, embed=mixer_embed, hypernet_embed=hypernet_embed)
        self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        # Standardisation of the state fed to both mixers (identity until set_state_stats).
        self.register_buffer("state_mean", torch.zeros(dims.state_dim))
        self.register_buffer("state_std", torch.ones(dims.state_dim))

    @torch.no_grad()
    def set_state_stats(self, state: torch.Tensor) -> None:
        """Standardise the mixer's state input with these rows' mean and std (constant features: 1)."""
        state = state.float()
        std = state.std(0)
        self.state_mean.copy_(state.mean(0))
        self.state_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def norm_state(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self.state_mean) / self.state_std

    def mixer_payload(self) -> dict:
        """The online mixer and its state standardisation as plain data (saved beside the agent in
        policy.pt, so `logo export` can ship Q_tot too)."""
        return {
            "embed": self.mixer_embed,
            "hypernet_embed": self.hypernet_embed,
            "state_dict": {k: v.detach().cpu() for k, v in self.mixer.state_dict().items()},
            "state_mean": self.state_mean.detach().cpu().clone(),
            "state_std": self.state_std.detach().cpu().clone(),
        }

    def online_parameters(self) -> list[nn.Parameter]:
        return [*self.agent.parameters(), *self.mixer.parameters()]

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        pairs = [(self.target_agent, self.agent), (self.target_mixer, self.mixer)]
        for target, online in pairs:
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.lerp_(o, tau)


def sample_joint_actions(
    avail: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """K joint actions per row, each agent's action uniform among its available ones.

    avail [B,N,A] bool -> [K,B,N] int64. Draws r uniform in 0..(count − 1) per agent and picks the
    (r+1)-th available action by a binary search of the running count of available actions: K·B·N
    random numbers instead of K·B·N·A scores and an argmax (2x faster on CPU for SMAX sizes).
    An agent with no available action gets action 0.
    """
    running = avail.to(torch.int32).cumsum(-1)  # [B,N,A]: 1..count at the available positions
    count = running[..., -1:].clamp_min(1)  # [B,N,1]
    u = torch.rand((*avail.shape[:-1], k), generator=generator, device=avail.device)  # [B,N,K]
    rank = (u * count).long().clamp_max(count - 1) + 1
    picked = torch.searchsorted(running, rank.to(torch.int32))  # [B,N,K]
    return picked.clamp_max(avail.shape[-1] - 1).permute(2, 0, 1)


def enumerate_joint_actions(avail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All A^N joint actions for every row, and which of them are fully available.

    avail [B,N,A] -> (joint [A^N,B,N] int64, valid [A^N,B] bool). Exact CQL for small teams and tests.
    """
    b, n, a = avail.shape
    grid = torch.cartesian_prod(*[torch.arange(a, device=avail.device)] * n).reshape(-1, n)  # [A^N,N]
    joint = grid[:, None, :].expand(-1, b, -1)
    valid = avail.unsqueeze(0).expand(joint.shape[0], -1, -1, -1).gather(-1, joint.unsqueeze(-1))
    return joint, valid.squeeze(-1).all(dim=-1)


def joint_q_values(q_agents: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
    """Each agent's Q of its action in K joint actions: q_agents [B,N,A], joint [K,B,N] -> [K,B,N].

    Gathered from q_agents itself rather than from a K-fold expanded view, so the backward pass
    scatters into [B,N,A], not into a [K,B,N,A] buffer (27m_vs_30m: 33 x 256 x 27 x 35 numbers).
    """
    return q_agents.gather(-1, joint.permute(1, 2, 0)).permute(2, 0, 1)


def cql_gap(
    q_agents: torch.Tensor,
    state: torch.Tensor,
    q_tot_data: torch.Tensor,
    joint: torch.Tensor,
    mixer: QMixer,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row logsumexp_k Q_tot(s, a^k) − Q_tot(s, a_data); joint [K,B,N], valid [K,B] or None.

    The plain logsumexp (no −log K), as CFCQL: with all joint actions enumerated it is exactly
    CQL(H)'s log Σ_a exp Q_tot(s, a); the constant offset of a sampled estimate has no gradient.
    """
    q_tot = mixer(joint_q_values(q_agents, joint), state)  # [K,B]
    if valid is not None:
        q_tot = q_tot.masked_fill(~valid, float("-inf"))
    return torch.logsumexp(q_tot, dim=0) - q_tot_data


@torch.no_grad()
def td_target(nets: MacqlNets, batch: dict[str, torch.Tensor], gamma: float) -> torch.Tensor:
    """r + γ(1 − terminated) Q̄_tot(s', a*) with a* the online greedy available action (double Q).

    With n-step fields in the batch (`reward_n`, `gamma_n`, `done_n`, `boot_obs`, `boot_state`,
    `boot_avail`): reward_n + gamma_n (1 − done_n) Q̄_tot(s_{t+k}, a*), the discounted sum of the k
    rewards up to the bootstrap row and γ^k (precomputed, so `gamma` is not used then).
    Time-outs are not `terminated`, so they bootstrap like any other step.
    """
    if "reward_n" in batch:
        obs, state, avail = batch["boot_obs"], batch["boot_state"], batch["boot_avail"]
        reward, discount, done = batch["reward_n"], batch["gamma_n"], batch["done_n"]
    else:
        obs, state, avail = batch["next_obs"], batch["next_state"], batch["next_avail_actions"]
        reward, discount, done = batch["reward"], gamma, batch["terminated"]
    best = masked_greedy(nets.agent(obs), avail)  # [B,N]
    q_next = nets.target_agent(obs).gather(-1, best.unsqueeze(-1)).squeeze(-1)
    q_tot_next = nets.target_mixer(q_next, nets.norm_state(state))
    not_done = 1.0 - done.to(q_tot_next.dtype)
    return reward + discount * not_done * q_tot_next


# A conservative term: (nets, per-agent Q [B,N,A], standardised state [B,S], batch, config, generator)
# -> (Q_tot of the data joint action [B], the per-row "push down" value [B], extra detached parts).
# The loss adds α · mean(push down − Q_tot(data)) (by `cql_synthetic` for synthetic rows), so MACQL's
# sampled joint-action logsumexp and CFCQL's counterfactual one share the TD part, the synthetic-row
# treatment and the update step (algos/cfcql.py).
ConservativeTerm = Callable[
    [MacqlNets, torch.Tensor, torch.Tensor, dict, MacqlConfig, torch.Generator | None],
    tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]],
]


def sampled_cql_term(
    nets: MacqlNets,
    q_agents: torch.Tensor,
    state: torch.Tensor,
    batch: dict[str, torch.Tensor],
    cfg: MacqlConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """MACQL's term: logsumexp of Q_tot over K sampled joint actions (and the data one, and with
    `cql_greedy` the online greedy one)."""
    # One mixer pass for the data action and the others: row 0 of `joint` is the data action.
    parts = [batch["actions"].unsqueeze(0)]
    if cfg.cql_greedy:
        parts.append(masked_greedy(q_agents.detach(), batch["avail_actions"]).unsqueeze(0))
    parts.append(sample_joint_actions(batch["avail_actions"], cfg.cql_samples, generator))
    joint = torch.cat(parts)
    q_all = nets.mixer(joint_q_values(q_agents, joint), state)  # [1+K,B], [2+K,B] with the greedy one
    lse = torch.logsumexp(q_all if cfg.cql_include_data else q_all[1:], dim=0)  # [B]
    return q_all[0], lse, {}


def conservative_q_loss(
    nets: MacqlNets,
    batch: dict[str, torch.Tensor],
    cfg: MacqlConfig,
    term: ConservativeTerm,
    generator: torch.Generator | None = None,
    *,
    q_agents: torch.Tensor | None = None,
    target: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """½ (Q_tot(s, a) − y)² + α · conservative term, on one batch of transitions.

    `q_agents` [B,N,A] and `target` [B] may be given precomputed (a recurrent agent unrolled over
    episodes, whose steps are flattened into rows: algos/recurrent.py); by default they are the
    feed-forward agent's Qs of `obs` and `td_target`.
    Returns (loss, parts) with parts detached: td_loss, cql_gap (before α), q_tot, target, plus the
    term's own parts.
    """
    if q_agents is None:
        q_agents = nets.agent(batch["obs"])  # [B,N,A]
    state = nets.norm_state(batch["state"])
    if target is None:
        target = td_target(nets, batch, cfg.gamma)
    if cfg.cql_alpha > 0:
        q_tot, push_down, extra = term(nets, q_agents, state, batch, cfg, generator)
    else:
        q_data = q_agents.gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
        q_tot = nets.mixer(q_data, state)  # [B]
    td_loss = 0.5 * (q_tot - target).pow(2).mean()
    loss = td_loss
    parts = {"td_loss": td_loss.detach(), "q_tot": q_tot.detach().mean(), "target": target.mean()}
    if cfg.cql_alpha > 0:
        gap = _conservative_term(push_down, q_tot, batch.get("synthetic"), cfg.cql_synthetic)
        loss = loss + cfg.cql_alpha * gap
        parts["cql_gap"] = gap.detach()
        parts.update(extra)
    parts["loss"] = loss.detach()
    return loss, parts


def macql_loss(
    nets: MacqlNets,
    batch: dict[str, torch.Tensor],
    cfg: MacqlConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The MACQL loss on one batch of transitions (dict as from Transitions.to_torch or the sampler).

    Returns (loss, parts) with parts detached: td_loss, cql_gap (before α), q_tot, target.
    """
    return conservative_q_loss(nets, batch, cfg, sampled_cql_term, generator)


def _conservative_term(
    lse: torch.Tensor, q_tot: torch.Tensor, synthetic: torch.Tensor | None, how: str
) -> torch.Tensor:
    """The CQL term of a batch: mean over rows of logsumexp − Q_tot(data action), by `how` for the
    synthetic rows (mask `synthetic` [B] bool; None: every row is real)."""
    if synthetic is None or how == "data" or not bool(synthetic.any()):
        return (lse - q_tot).mean()
    real = ~synthetic
    if how == "none":  # real rows only
        return (lse[real] - q_tot[real]).mean() if bool(real.any()) else lse.new_zeros(())
    # COMBO: push Q down on every row (model states included), up only on real data actions.
    up = q_tot[real].mean() if bool(real.any()) else lse.new_zeros(())
    return lse.mean() - up


def apply_update(
    nets: MacqlNets,
    optimiser: torch.optim.Optimizer,
    loss: torch.Tensor,
    parts: dict[str, torch.Tensor],
    cfg: MacqlConfig,
    step: int,
) -> dict[str, torch.Tensor]:
    """Backpropagate `loss`, clip, step the optimiser and update the target networks on schedule
    (`step` counts from 1). Returns `parts` with grad_norm added when clipping."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        parts["grad_norm"] = torch.nn.utils.clip_grad_norm_(nets.online_parameters(), cfg.grad_clip).detach()
    optimiser.step()
    if step % cfg.target_update_every == 0:
        nets.update_target(cfg.target_tau)
    return parts


def macql_update(
    nets: MacqlNets,
    optimiser: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    cfg: MacqlConfig,
    step: int,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One MACQL gradient step; `step` counts from 1 and schedules the target update. Returns the parts."""
    loss, parts = macql_loss(nets, batch, cfg, generator)
    return apply_update(nets, optimiser, loss, parts, cfg, step)
