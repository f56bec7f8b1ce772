"""Uniform over the action space: the floor every learned policy must beat.

Discrete: uniform over each agent's available actions. Continuous (`action_dim` given): every entry
of each agent's [-1, 1] action vector drawn uniformly and independently; continuous envs here have no
unavailable actions, so `avail` only supplies the batch and agent sizes.
"""

from __future__ import annotations

import numpy as np


class RandomPolicy:
    def __init__(self, action_dim: int | None = None):
        if action_dim is not None and action_dim < 1:
            raise ValueError(f"action_dim {action_dim} must be at least 1")
        self.action_dim = action_dim

    def act(
        self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray, *, greedy: bool, rng: np.random.Generator
    ) -> np.ndarray:
        if self.action_dim is not None:
            return rng.uniform(-1.0, 1.0, (*avail.shape[:2], self.action_dim)).astype(np.float32)
        # The argmax of i.i.d. uniform scores is a uniform pick; unavailable actions score below all.
        scores = rng.random(avail.shape)
        scores[~avail] = -1.0
        return scores.argmax(axis=-1).astype(np.int64)
