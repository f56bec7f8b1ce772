"""Random but valid episodes in the canonical layout, for tests, benchmarks and smoke runs.

They satisfy every rule the validator checks (prefix `filled`, available actions taken, terminated
only on a real end's last step, zero padding), so any consumer can be exercised without a simulator.
"""

from __future__ import annotations

import numpy as np

from logo_cli.data.layout import EpisodeArrays


def random_episodes(
    n_episodes: int,
    *,
    n_agents: int,
    obs_dim: int,
    state_dim: int,
    n_actions: int,
    episode_limit: int,
    seed: int = 0,
    discrete: bool = True,
    terminate_prob: float = 0.5,
    win_prob: float = 0.5,
) -> EpisodeArrays:
    """`n_episodes` episodes: a fraction `terminate_prob` end for real at a random step (and of those
    a fraction `win_prob` win, SMAX-style: +1 on the last step); the rest time out at the limit."""
    rng = np.random.default_rng(seed)
    E, L, N, Od, S, A = n_episodes, episode_limit + 1, n_agents, obs_dim, state_dim, n_actions
    ends = rng.random(E) < terminate_prob
    lengths = np.where(ends, rng.integers(1, episode_limit + 1, E), episode_limit)
    rows = np.arange(L)[None, :]
    filled = rows <= lengths[:, None]  # rows 0..l
    steps = rows < lengths[:, None]  # rows 0..l-1

    state = rng.standard_normal((E, L, S), dtype=np.float32) * filled[:, :, None]
    obs = rng.standard_normal((E, L, N, Od), dtype=np.float32) * filled[:, :, None, None]
    reward = (rng.random((E, L), dtype=np.float32) * 0.1) * steps
    last = rows == (lengths - 1)[:, None]
    wins = ends & (rng.random(E) < win_prob)
    reward = reward + (last & wins[:, None]).astype(np.float32)
    terminated = (last & ends[:, None]).astype(np.uint8)
    if discrete:
        avail = rng.random((E, L, N, A)) < 0.6
        avail[..., 0] |= ~avail.any(axis=-1)  # at least one available action per agent and row
        avail &= filled[:, :, None, None]
        # pick uniformly among available actions: argmax of random keys masked to the available ones
        keys = np.where(avail, rng.random((E, L, N, A)), -1.0)
        actions = (keys.argmax(axis=-1) * steps[:, :, None])[..., None].astype(np.int64)
        probs = avail / np.maximum(avail.sum(axis=-1, keepdims=True), 1)
        avail_actions, probs_out = avail.astype(np.int32), probs.astype(np.float32)
    else:
        actions = rng.uniform(-1, 1, (E, L, N, A)).astype(np.float32) * steps[:, :, None, None]
        avail_actions, probs_out = None, None
    return EpisodeArrays(
        state=state,
        obs=obs,
        actions=actions,
        avail_actions=avail_actions,
        probs=probs_out,
        reward=reward[..., None].astype(np.float32),
        terminated=terminated[..., None],
        filled=filled[..., None].astype(np.int64),
    )
