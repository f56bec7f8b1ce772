"""Uniform over available actions: the floor every learned policy must beat."""

from __future__ import annotations

import numpy as np


class RandomPolicy:
    def act(
        self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray, *, greedy: bool, rng: np.random.Generator
    ) -> np.ndarray:
        # Gumbel-max over a uniform score, restricted to available actions.
        scores = rng.random(avail.shape)
        scores[~avail] = -1.0
        return scores.argmax(axis=-1).astype(np.int64)
