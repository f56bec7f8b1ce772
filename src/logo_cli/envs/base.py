"""One small protocol for every simulator: batched, numpy in and out.

Each adapter runs `num_envs` copies of one scenario. `step` returns the observation after the step
(`next`, the terminal one where an episode ended, which is what a dataset must record) and the
observation to act from (`reset`: equal to `next` where the episode goes on, a fresh episode's first
observation where it ended), so callers never lose terminal transitions to an auto-reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class EnvSpec:
    name: str  # e.g. "smax:3m"
    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int  # discrete: actions per agent; continuous: action vector size per agent
    discrete: bool
    episode_limit: int
    # index of the action a dead agent must take (SMAX: stop, SMAC: no-op); None for continuous
    noop_action: int | None = None
    # whether episodes can be won (SMAX, SMAC); MaMuJoCo has no win, so evaluate reports no win rate
    winnable: bool = True


@dataclass
class EnvObs:
    """What the team sees in a batch of B envs."""

    obs: np.ndarray  # [B,N,O] float32
    state: np.ndarray  # [B,S] float32
    avail_actions: np.ndarray  # [B,N,A] bool (continuous envs: all True, A = 1)


@dataclass
class EnvStep:
    next: EnvObs  # after the step; terminal where done
    reward: np.ndarray  # [B] float32 team reward
    terminated: np.ndarray  # [B] bool: a real end (win, loss, all dead)
    truncated: np.ndarray  # [B] bool: the episode limit, not a real end
    won: np.ndarray  # [B] bool
    reset: EnvObs  # to act from next: `next` where not done, a new episode's start where done

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


@runtime_checkable
class MultiAgentEnv(Protocol):
    spec: EnvSpec
    num_envs: int

    def reset(self, seed: int) -> EnvObs:
        """Start all envs with a seed; the same seed gives the same episodes."""
        ...

    def step(self, actions: np.ndarray) -> EnvStep:
        """actions: [B,N] int64 (discrete) or [B,N,Ad] float32 (continuous)."""
        ...

    def close(self) -> None: ...
