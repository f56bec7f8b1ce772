"""The team-policy protocol shared by collect, evaluate, rollout and train-policy."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TeamPolicy(Protocol):
    """Maps a batch of team observations to joint actions.

    obs [B,N,O] float32, state [B,S] float32, avail [B,N,A] bool -> actions [B,N] int64 (discrete)
    or [B,N,Ad] float32 (continuous). Discrete policies never return an unavailable action.
    """

    def act(
        self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray, *, greedy: bool, rng: np.random.Generator
    ) -> np.ndarray: ...
