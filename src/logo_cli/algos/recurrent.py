"""MACQL / CFCQL with recurrent (GRU) agents, trained on whole episodes with TD(λ) targets.

The reference MACQL / CFCQL (thu-rllab/CFCQL, pymarl style) trains GRU agents on batches of whole
episodes; this module does the same on top of algos/macql.py:
- episodes are recovered from the dataset's transitions (rows are in episode order; a new episode
  starts wherever a row does not continue the previous one, `nstep.continuity_segments`) and a batch
  is `seq_batch` whole episodes drawn uniformly, each from its first step, padded to the longest one
  in the batch with a mask. Starting from the first step gives every step its exact hidden state, so
  there is no burn-in; a batch costs as many GRU steps as its longest episode.
- the agent sees its observation, its previous action (one-hot; zeros at the first step) and its id
  (models/gru_agent.py); the hidden state starts at zeros.
- targets are TD(λ) (`td_lambda_targets`, λ = 0.6 by default as in CFCQL) over the double-Q values
  Q̄_tot(s_{t+1}, argmax_{a available} Q(τ_{t+1}, a)) of the target GRU and target mixer; a time-out
  bootstraps from the last next state, a real end does not. λ = 0 is the one-step target.
- the TD loss and the conservative term are macql.py's `conservative_q_loss` with the per-agent Qs
  and targets precomputed: the valid (unpadded) steps of the batch are flattened into rows, so the
  QMIX mixer, MACQL's sampled logsumexp and CFCQL's counterfactual term (with its feed-forward
  behaviour policy β on the observation) apply per time step unchanged, and every valid step weighs
  the same in the mean (as pymarl's masked mean).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from logo_cli.algos.macql import ConservativeTerm, MacqlConfig, MacqlNets, conservative_q_loss
from logo_cli.data.nstep import continuity_segments
from logo_cli.data.transitions import Dims, Transitions
from logo_cli.models.agent_net import masked_greedy
from logo_cli.models.gru_agent import GRUAgent


def make_recurrent(nets: MacqlNets, dims: Dims, rnn_hidden: int) -> MacqlNets:
    """Swap the MLP agent of MACQL / CFCQL networks for a GRU agent (and its target copy)."""
    nets.agent = GRUAgent(dims.obs_dim, dims.n_agents, dims.n_actions, hidden=rnn_hidden)
    nets.target_agent = copy.deepcopy(nets.agent).requires_grad_(False)
    return nets


def episode_bounds(t: Transitions) -> tuple[np.ndarray, np.ndarray]:
    """(first row, length) of every episode of episode-ordered transitions."""
    seg = continuity_segments(t)
    if len(seg) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], seg[1:] != seg[:-1]]))
    lengths = np.diff(np.concatenate([starts, [len(seg)]]))
    return starts.astype(np.int64), lengths.astype(np.int64)


class EpisodeSampler:
    """Batches of whole episodes, padded to the longest, drawn uniformly with `rng`.

    A batch of B episodes of at most T steps holds obs [B,T+1,N,O], state [B,T+1,S], avail_actions
    [B,T+1,N,A] (row l of an episode of l steps is its last next_* row), last_action [B,T+1,N,A]
    (one-hot of the previous step's action, zeros at row 0), actions [B,T,N], reward [B,T],
    terminated [B,T] and mask [B,T] (True on the episode's steps). Padding repeats the last row.
    """

    def __init__(self, real: Transitions, rng: np.random.Generator, device: str = "cpu"):
        self.starts, self.lengths = episode_bounds(real)
        self.rng = rng
        self.device = device
        self.n_actions = real.dims.n_actions
        self._t = real.to_torch(device)

    @property
    def n_episodes(self) -> int:
        return len(self.starts)

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        return self.episodes(self.rng.integers(0, self.n_episodes, size=n))

    def episodes(self, which: np.ndarray) -> dict[str, torch.Tensor]:
        which = np.asarray(which, dtype=np.int64)
        start = torch.as_tensor(self.starts[which], device=self.device)
        length = torch.as_tensor(self.lengths[which], device=self.device)
        steps = int(length.max())
        t = torch.arange(steps + 1, device=self.device)
        idx = start[:, None] + torch.minimum(t[None, :], length[:, None] - 1)  # [B,T+1] row of each step
        after = t[None, :] >= length[:, None]  # [B,T+1]; row l: the last row's next_*
        src = self._t

        def pick(now: str, nxt: str) -> torch.Tensor:
            a, b = src[now][idx], src[nxt][idx]
            return torch.where(after.view(*after.shape, *([1] * (a.dim() - 2))), b, a)

        mask = ~after[:, :steps]  # [B,T]
        actions = src["actions"][idx[:, :steps]] * mask[..., None]  # padding: action 0
        onehot = torch.nn.functional.one_hot(actions, self.n_actions).float() * mask[..., None, None]
        last = torch.cat([torch.zeros_like(onehot[:, :1]), onehot], dim=1)  # [B,T+1,N,A]
        return {
            "obs": pick("obs", "next_obs"),
            "state": pick("state", "next_state"),
            "avail_actions": pick("avail_actions", "next_avail_actions"),
            "last_action": last,
            "actions": actions,
            "reward": src["reward"][idx[:, :steps]] * mask,
            "terminated": src["terminated"][idx[:, :steps]] & mask,
            "mask": mask,
        }


def td_lambda_targets(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    q_next: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """TD(λ) returns per step, all [B,T] (mask: a prefix of True per row):

      G_t = r_t + γ (1 − d_t) [(1 − λ) Q_{t+1} + λ G_{t+1}]   while step t+1 is in the episode,
      G_t = r_t + γ (1 − d_t) Q_{t+1}                        at its last step,
    with Q_{t+1} = `q_next[t]` the bootstrap value of s_{t+1}. Padded steps get 0. λ = 0 is the
    one-step target; λ = 1 the discounted return (bootstrapped at a time-out).
    """
    b, steps = reward.shape
    out = torch.zeros_like(reward)
    g = torch.zeros(b, dtype=reward.dtype, device=reward.device)
    not_done = 1.0 - terminated.to(reward.dtype)
    for t in reversed(range(steps)):
        follows = mask[:, t + 1] if t + 1 < steps else torch.zeros_like(mask[:, t])
        boot = torch.where(follows, (1.0 - lam) * q_next[:, t] + lam * g, q_next[:, t])
        g = (reward[:, t] + gamma * not_done[:, t] * boot) * mask[:, t].to(reward.dtype)
        out[:, t] = g
    return out


def recurrent_loss(
    nets: MacqlNets,
    batch: dict[str, torch.Tensor],
    cfg: MacqlConfig,
    term: ConservativeTerm,
    td_lambda: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MACQL / CFCQL loss (by `term`) on a batch of episodes from EpisodeSampler; parts as macql's."""
    assert isinstance(nets.agent, GRUAgent)
    obs, last, avail, state = batch["obs"], batch["last_action"], batch["avail_actions"], batch["state"]
    mask, reward = batch["mask"], batch["reward"]
    b, steps = reward.shape
    q, _ = nets.agent(obs, last)  # [B,T+1,N,A]
    with torch.no_grad():
        q_target, _ = nets.target_agent(obs, last)
        best = masked_greedy(q.detach()[:, 1:], avail[:, 1:])  # double Q: online greedy at t+1
        q_next = q_target[:, 1:].gather(-1, best.unsqueeze(-1)).squeeze(-1)  # [B,T,N]
        v_next = nets.target_mixer(
            q_next.reshape(b * steps, -1), nets.norm_state(state[:, 1:].reshape(b * steps, -1))
        ).view(b, steps)
        target = td_lambda_targets(reward, batch["terminated"], mask, v_next, cfg.gamma, td_lambda)
    rows = {
        "obs": obs[:, :-1][mask],
        "state": state[:, :-1][mask],
        "actions": batch["actions"][mask],
        "avail_actions": avail[:, :-1][mask],
    }
    return conservative_q_loss(
        nets, rows, cfg, term, generator, q_agents=q[:, :-1][mask], target=target[mask]
    )
