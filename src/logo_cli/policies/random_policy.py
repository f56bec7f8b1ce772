"""Uniform over available actions: the floor every learned policy must beat."""

from __future__ import annotations

import numpy as np


class RandomPolicy:
    def act(
        self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray, *, greedy: bool, rng: np.random.Generator
    ) -> np.ndarray:
        # The argmax of i.i.d. uniform scores is a uniform pick; unavailable actions score below all.
        scores = rng.random(avail.shape)
        scores[~avail] = -1.0
        return scores.argmax(axis=-1).astype(np.int64)
