"""A small known N-agent dynamics for the world-model tests (imported by test_models_* and
test_pretrain_*), and checks that the generator itself behaves as described.

Agents move on a plane: action k in 0..3 moves 0.1 along an axis, 4 is stop (the SMAX-style no-op);
every agent is pulled 10% towards the team mean. An agent that leaves the box |x| <= 0.9 dies: its
obs become all zero and only the stop action stays available. The episode ends (terminated) when
all agents are dead. Obs of agent i: own position, positions of all agents relative to it, a 1.
State: all positions and the alive flags. Reward: minus the mean distance from the origin / 10.
"""

from __future__ import annotations

import numpy as np
import torch

from logo_cli.data.layout import EpisodeArrays, make_episode
from logo_cli.data.transitions import Dims, Transitions

MOVES = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [0, 0]], dtype=np.float32)
NOOP = 4
N_ACTIONS = 5


def step(pos: np.ndarray, alive: np.ndarray, actions: np.ndarray):
    """pos [B,N,2], alive [B,N], actions [B,N] -> next pos, next alive, reward [B], terminated [B]."""
    pull = pos.mean(1, keepdims=True) - pos
    nxt = np.where(alive[..., None], pos + 0.1 * MOVES[actions] + 0.1 * pull, 0.0)
    alive2 = alive & (np.abs(nxt).max(-1) <= 0.9)
    nxt = np.where(alive2[..., None], nxt, 0.0).astype(np.float32)
    reward = (-np.abs(nxt).sum((1, 2)) / pos.shape[1] * 0.1).astype(np.float32)
    return nxt, alive2, reward, ~alive2.any(1)


def observe(pos: np.ndarray, alive: np.ndarray):
    """-> obs [B,N,2+2N+1], state [B,2N+N], avail [B,N,5] bool."""
    b, n, _ = pos.shape
    rel = (pos[:, None, :, :] - pos[:, :, None, :]).reshape(b, n, 2 * n)
    obs = np.concatenate([pos, rel, np.ones((b, n, 1), np.float32)], -1)
    obs = np.where(alive[..., None], obs, 0.0).astype(np.float32)
    state = np.concatenate([pos.reshape(b, -1), alive.astype(np.float32)], -1).astype(np.float32)
    avail = np.broadcast_to(alive[..., None], (b, n, N_ACTIONS)).copy()
    avail[..., NOOP] = True
    return obs, state, avail


def random_start(rng: np.random.Generator, b: int, n: int, spread: float = 0.8):
    pos = rng.uniform(-spread, spread, (b, n, 2)).astype(np.float32)
    alive = rng.random((b, n)) < 0.9
    return np.where(alive[..., None], pos, 0.0).astype(np.float32), alive


def transitions(n: int, n_agents: int = 3, seed: int = 0, spread: float = 0.8) -> Transitions:
    """n independent one-step transitions from random states under uniformly random actions."""
    rng = np.random.default_rng(seed)
    pos, alive = random_start(rng, n, n_agents, spread)
    act = np.where(alive, rng.integers(0, N_ACTIONS, (n, n_agents)), NOOP).astype(np.int64)
    obs, state, avail = observe(pos, alive)
    npos, nalive, rew, term = step(pos, alive, act)
    nobs, nstate, navail = observe(npos, nalive)
    return Transitions(state, obs, act, avail, rew, term, nstate, nobs, navail)


def continuous_batch(dims: Dims, b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random training batch for continuous actions in [-1, 1] (one always-true avail column)."""
    g = torch.Generator().manual_seed(seed)
    n, o, s, a = dims.n_agents, dims.obs_dim, dims.state_dim, dims.n_actions
    return {
        "state": torch.randn(b, s, generator=g),
        "obs": torch.randn(b, n, o, generator=g),
        "actions": torch.rand(b, n, a, generator=g) * 2 - 1,
        "avail_actions": torch.ones(b, n, 1, dtype=torch.bool),
        "reward": torch.randn(b, generator=g),
        "terminated": torch.zeros(b, dtype=torch.bool),
        "next_state": torch.randn(b, s, generator=g),
        "next_obs": torch.randn(b, n, o, generator=g),
        "next_avail_actions": torch.ones(b, n, 1, dtype=torch.bool),
    }


def episodes(n_episodes: int, n_agents: int = 3, limit: int = 12, seed: int = 0) -> EpisodeArrays:
    """Episodes in the canonical layout (random actions among the available ones)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_episodes):
        pos, alive = random_start(rng, 1, n_agents, 0.5)
        alive[:] = True
        states, obs_l, avails, acts, rews = [], [], [], [], []
        terminated = False
        for _ in range(limit):
            o, s, av = observe(pos, alive)
            states.append(s[0]), obs_l.append(o[0]), avails.append(av[0])
            a = np.where(alive, rng.integers(0, N_ACTIONS, (1, n_agents)), NOOP)
            pos, alive, r, term = step(pos, alive, a)
            acts.append(a[0]), rews.append(r[0])
            if term[0]:
                terminated = True
                break
        o, s, av = observe(pos, alive)
        states.append(s[0]), obs_l.append(o[0]), avails.append(av[0])
        out.append(
            make_episode(
                np.stack(states),
                np.stack(obs_l),
                np.stack(acts).astype(np.int64),
                np.asarray(rews, np.float32),
                terminated,
                limit,
                avail_actions=np.stack(avails).astype(np.int32),
            )
        )
    return EpisodeArrays.concat(out)


def test_dynamics_generator_is_consistent():
    tr = transitions(500, seed=3)
    dims = tr.dims
    assert (dims.n_agents, dims.obs_dim, dims.state_dim, dims.n_actions) == (3, 9, 9, 5)
    dead_next = (tr.next_obs == 0).all(-1)
    assert dead_next.any() and (~dead_next).any()
    # a dead agent has only the stop action, and death is absorbing
    assert (tr.next_avail_actions[dead_next] == np.eye(5, dtype=bool)[NOOP]).all()
    assert dead_next[(tr.obs == 0).all(-1)].all()
    # the next state's positions are the next obs' own positions
    np.testing.assert_allclose(tr.next_state[:, :6].reshape(-1, 3, 2), tr.next_obs[..., :2])
    eps = episodes(4, seed=1)
    assert eps.n_episodes == 4 and (eps.lengths >= 1).all()
