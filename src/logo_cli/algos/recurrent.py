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
    """MACQL / CFCQL loss (by `term`) on a batch of sequences (EpisodeSampler, or SequenceBatcher with
    synthetic branches: then `h0` / `h0_target` [B,N,H] start the online / target GRU and `synthetic`
    [B] flags the branches); parts as macql's."""
    assert isinstance(nets.agent, GRUAgent)
    obs, last, avail, state = batch["obs"], batch["last_action"], batch["avail_actions"], batch["state"]
    mask, reward = batch["mask"], batch["reward"]
    b, steps = reward.shape
    h0, h0_target = batch.get("h0"), batch.get("h0_target")  # burnt-in starts (synthetic branches)
    q, _ = nets.agent(obs, last, h0)  # [B,T+1,N,A]
    with torch.no_grad():
        q_target, _ = nets.target_agent(obs, last, h0_target)
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
    if "synthetic" in batch:  # [B] per sequence -> per step, for macql's cql_synthetic treatment
        rows["synthetic"] = batch["synthetic"][:, None].expand(b, steps)[mask]
    return conservative_q_loss(
        nets, rows, cfg, term, generator, q_agents=q[:, :-1][mask], target=target[mask]
    )


_SEQUENCE_KEYS = ("obs", "state", "avail_actions", "last_action", "actions", "reward", "terminated", "mask")


def pad_time(batch: dict[str, torch.Tensor], steps: int) -> dict[str, torch.Tensor]:
    """Pad a sequence batch (EpisodeSampler layout) with zeros to `steps` steps (+1 row)."""
    out = {}
    for k, v in batch.items():
        size = steps + 1 if k in ("obs", "state", "avail_actions", "last_action") else steps
        if k not in _SEQUENCE_KEYS or v.shape[1] == size:
            out[k] = v
            continue
        pad = v.new_zeros((v.shape[0], size - v.shape[1], *v.shape[2:]))
        out[k] = torch.cat([v, pad], dim=1)
    return out


@torch.no_grad()
def burn_in(agent: GRUAgent, obs: torch.Tensor, last: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Hidden state after a right-aligned prefix: obs [B,P,N,O], last [B,P,N,A], valid [B,P] (a suffix
    of True per row) -> h [B,N,H]; zeros for a row with an empty prefix (an episode's first step)."""
    h = agent.initial_state(obs.shape[0], obs.device)
    for t in range(obs.shape[1]):
        _, nxt = agent.step(obs[:, t], last[:, t], h)
        h = torch.where(valid[:, t, None, None], nxt, h)
    return h


class BranchSampler:
    """Synthetic branches as sequences, each started from the GRU state of its real prefix.

    A branch's first row is a dataset state (rollouts start at real rows, and the first row keeps its
    state and observations exactly), so it is found in the real data by those values; the up to
    `burn_in` real steps before it in its episode (observations and actions) are the prefix the
    online and the target GRU run over, without gradient, to get the branch's initial hidden states;
    the real action just before it is the branch's first "last action". A branch whose first row is
    not in the data (a partial buffer; or a first row not at step 0) starts from zeros.

    Sampling: weight mode draws branch b with probability ∝ w_{b,0}, its first row's weight, and
    keeps its steps j while w_{b,j} >= u · w_{b,0}, u ~ U(0, 1): with the default cumulative score the
    weights never grow along a branch, so step j is kept with probability w_{b,j} / w_{b,0} and every
    row is trained on in proportion to its own weight, as the transition sampler does. A cut branch
    bootstraps from its last kept step (a truncation). Uniform and penalty modes draw whole branches
    uniformly, which trains every row equally often.
    """

    def __init__(
        self,
        real: EpisodeSampler,
        view: tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray, np.ndarray],
        weighted: bool,
        burn_in: int,
    ):
        syn, probs, branch, step = view
        self.real, self.syn, self.weighted, self.burn = real, syn, weighted, int(burn_in)
        order = np.lexsort((step, branch))
        sb = np.asarray(branch)[order]
        first = np.flatnonzero(np.concatenate([[True], sb[1:] != sb[:-1]]))
        self.order = torch.as_tensor(order, device=real.device)
        self.first = first  # position in `order` of each branch's first row
        self.length = np.diff(np.concatenate([first, [len(order)]]))
        w = np.asarray(probs, dtype=np.float64)[order]
        # running minimum along each branch: the keep-threshold of the cut (equal to w when monotone)
        seg = np.repeat(np.arange(len(first)), self.length)
        self.w_run = _running_min_by_segment(w, seg)
        self.w_first = w[first]
        self.p_branch = self.w_first / self.w_first.sum() if weighted else None
        starts = np.asarray(step)[order][first] == 0
        self.start_row = self._find_starts(order[first], starts)
        self.matched = int((self.start_row >= 0).sum())

    def _find_starts(self, rows: np.ndarray, at_zero: np.ndarray) -> np.ndarray:
        """Dataset row of each branch's first row (-1: not found), by exact state and observations
        (hashed in chunks, so a large dataset is never copied whole; a hash match is checked)."""
        t, syn = self.real._t, self.syn

        def key(src: dict[str, torch.Tensor], i: np.ndarray) -> np.ndarray:
            ii = torch.as_tensor(i, device=self.real.device)
            return torch.cat([src["state"][ii], src["obs"][ii].flatten(1)], dim=1).cpu().numpy()

        index: dict[int, int] = {}
        n = int(t["state"].shape[0])
        for lo in range(n - 1, -1, -65536):  # backwards: the first occurrence of a value wins
            chunk = np.arange(max(0, lo - 65535), lo + 1)
            for i, k in zip(chunk[::-1], key(t, chunk)[::-1], strict=True):
                index[hash(k.tobytes())] = int(i)
        out = np.full(len(rows), -1, dtype=np.int64)
        wanted = np.flatnonzero(at_zero)
        if len(wanted) == 0:
            return out
        keys = key(syn, rows[wanted])
        found = np.array([index.get(hash(k.tobytes()), -1) for k in keys], dtype=np.int64)
        ok = found >= 0
        if ok.any():  # a hash collision would name another row: keep exact matches only
            same = (key(t, found[ok]) == keys[ok]).all(axis=1)
            found[np.flatnonzero(ok)[~same]] = -1
        out[wanted] = found
        return out

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        nb = len(self.first)
        which = rng.choice(nb, size=n, p=self.p_branch) if self.weighted else rng.integers(0, nb, size=n)
        keep = self.length[which].copy()
        if self.weighted:
            u = rng.random(n)
            for i, b in enumerate(which):  # steps kept while the running weight stays above u·w_0
                w = self.w_run[self.first[b] : self.first[b] + self.length[b]]
                keep[i] = max(1, int((w >= u[i] * self.w_first[b]).sum()))
        return self.branches(which, keep)

    def branches(self, which: np.ndarray, keep: np.ndarray) -> dict[str, torch.Tensor]:
        dev = self.real.device
        steps = int(keep.max())
        t = np.arange(steps + 1)
        pos = self.first[which][:, None] + np.minimum(t[None, :], keep[:, None] - 1)
        rows = self.order[torch.as_tensor(pos, device=dev)]  # [B,T+1] synthetic row of each step
        after = torch.as_tensor(t[None, :] >= keep[:, None], device=dev)
        src = self.syn

        def pick(now: str, nxt: str) -> torch.Tensor:
            a, b = src[now][rows], src[nxt][rows]
            return torch.where(after.view(*after.shape, *([1] * (a.dim() - 2))), b, a)

        mask = ~after[:, :steps]
        actions = src["actions"][rows[:, :steps]] * mask[..., None]
        n_act = self.real.n_actions
        onehot = torch.nn.functional.one_hot(actions, n_act).float() * mask[..., None, None]
        start = self.start_row[which]
        pre = self._prefix(start)
        last0 = pre.pop("first_last")  # [B,N,A]: the real action before the branch
        out = {
            "obs": pick("obs", "next_obs"),
            "state": pick("state", "next_state"),
            "avail_actions": pick("avail_actions", "next_avail_actions"),
            "last_action": torch.cat([last0[:, None], onehot], dim=1),
            "actions": actions,
            "reward": src["reward"][rows[:, :steps]] * mask,
            "terminated": src["terminated"][rows[:, :steps]] & mask,
            "mask": mask,
        }
        return {**out, **pre}

    def _prefix(self, start: np.ndarray) -> dict[str, torch.Tensor]:
        """Right-aligned real prefixes (up to `burn` steps) of the branch starts (-1: none)."""
        real, dev = self.real, self.real.device
        known = start >= 0
        ep = np.searchsorted(real.starts, np.where(known, start, 0), side="right") - 1
        depth = np.where(known, start - real.starts[ep], 0)  # steps of the episode before the start
        plen = np.minimum(depth, self.burn)
        p = max(int(plen.max()), 1)
        j = np.arange(p)[None, :] - p + plen[:, None]  # index into each prefix; < 0: padding
        valid = j >= 0
        rows = np.where(valid, np.where(known, start, 0)[:, None] - plen[:, None] + j, 0)
        rt = torch.as_tensor(rows, device=dev)
        t = real._t
        # last action of each prefix step: the real action of the row before, zeros at an episode start
        ep_first = real.starts[ep][:, None]
        prev_ok = torch.as_tensor(valid & known[:, None] & (rows > ep_first), device=dev)
        prev = torch.as_tensor(np.maximum(rows - 1, 0), device=dev)
        one = torch.nn.functional.one_hot(t["actions"][prev], real.n_actions).float()
        last = one * prev_ok[..., None, None]
        before = torch.as_tensor(np.maximum(np.where(known, start, 0) - 1, 0), device=dev)
        first_ok = torch.as_tensor(known & (depth > 0), device=dev)[:, None, None]
        first_last = torch.nn.functional.one_hot(t["actions"][before], real.n_actions).float() * first_ok
        return {
            "pre_obs": t["obs"][rt],
            "pre_last": last,
            "pre_valid": torch.as_tensor(valid & known[:, None], device=dev),
            "first_last": first_last,
        }


def _running_min_by_segment(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Running minimum of `values` restarting at each new `segment` (non-decreasing ids), vectorised:
    on ranks (exact integers) offset so that every segment lies below all earlier ones."""
    n = len(values)
    if n == 0:
        return values.copy()
    order = np.argsort(values, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    offset = np.asarray(segment, dtype=np.int64) * (n + 1)
    low = np.minimum.accumulate(rank - offset) + offset
    return values[order][low]


class SequenceBatcher:
    """Batches of `seq_batch` sequences: real episodes, plus round(seq_batch · ratio) synthetic
    branches (BranchSampler) when a buffer is installed; adds h0 / h0_target and `synthetic`."""

    def __init__(self, real: EpisodeSampler, branches: BranchSampler | None, ratio: float):
        self.real, self.branches, self.ratio = real, branches, ratio

    def sample(self, nets: MacqlNets, n: int) -> dict[str, torch.Tensor]:
        if self.branches is None:
            return self.real.sample(n)
        n_syn = int(np.floor(n * self.ratio + 0.5))
        parts = []
        if n - n_syn > 0:
            parts.append(self.real.sample(n - n_syn))
        syn = self.branches.sample(n_syn, self.real.rng) if n_syn > 0 else None
        if syn is not None:
            pre = {k: syn.pop(k) for k in ("pre_obs", "pre_last", "pre_valid")}
            assert isinstance(nets.agent, GRUAgent) and isinstance(nets.target_agent, GRUAgent)
            syn["h0"] = burn_in(nets.agent, pre["pre_obs"], pre["pre_last"], pre["pre_valid"])
            syn["h0_target"] = burn_in(nets.target_agent, pre["pre_obs"], pre["pre_last"], pre["pre_valid"])
            parts.append(syn)
        steps = max(int(p["mask"].shape[1]) for p in parts)
        parts = [pad_time(p, steps) for p in parts]
        dev = self.real.device
        n_real = n - n_syn
        flags = torch.cat([torch.zeros(n_real, dtype=torch.bool), torch.ones(n_syn, dtype=torch.bool)])
        out = {k: torch.cat([p[k] for p in parts]) for k in parts[-1] if k not in ("h0", "h0_target")}
        if syn is not None:
            agent = nets.agent
            assert isinstance(agent, GRUAgent)
            zeros = agent.initial_state(n_real, dev)
            out["h0"] = torch.cat([zeros, syn["h0"]])
            out["h0_target"] = torch.cat([zeros, syn["h0_target"]])
        out["synthetic"] = flags.to(dev)
        return out
