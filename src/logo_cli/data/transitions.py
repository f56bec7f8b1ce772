"""Flat transition batches: the unit every learner in logo-cli consumes.

Episode-major h5 datasets and zarr rollout buffers are both turned into `Transitions`: one row per
(s_t, o_t, a_t, r_t, s_{t+1}, o_{t+1}) step. Arrays are numpy on the way in and out of storage and
torch inside training (`to_torch`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from logo_cli.errors import LogoError

MAX_DIM = 1 << 20  # the largest size a file may declare for agents, features or actions


@dataclass(frozen=True)
class Dims:
    """The sizes a model or policy is built for; a stage refuses inputs whose dims differ."""

    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int  # discrete: number of actions per agent; continuous: action vector size per agent
    discrete: bool = True

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> Dims:
        """Dims read from a file; ValueError (naming the field) unless every size is an integer in
        1..MAX_DIM and `discrete` a boolean, so a garbled file never sizes an allocation."""
        if not isinstance(d, dict):
            raise ValueError(f"dims is a {type(d).__name__}, expected an object")
        values = {f.name: d[f.name] for f in fields(cls)}
        for name, v in values.items():
            if name == "discrete":
                if not isinstance(v, bool):
                    raise ValueError(f"dims.discrete {v!r} is not a boolean")
            elif isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_DIM:
                raise ValueError(f"dims.{name} {v!r} is not an integer in 1..{MAX_DIM}")
        return cls(**values)

    def check_same(self, other: Dims, what: str) -> None:
        """Raise a one-line LogoError naming `what` when `other` does not match these dims."""
        if self != other:
            diffs = [
                f"{f.name} {getattr(self, f.name)} vs {getattr(other, f.name)}"
                for f in fields(self)
                if getattr(self, f.name) != getattr(other, f.name)
            ]
            raise LogoError(f"{what}: dims do not match ({', '.join(diffs)})")


@dataclass
class Transitions:
    """T transitions of an N-agent team.

    state [T,S] f32, obs [T,N,O] f32, actions [T,N] int64 (discrete) or [T,N,Ad] f32 (continuous),
    avail_actions [T,N,A] bool (discrete; all True for continuous A=1), reward [T] f32,
    terminated [T] bool (a real end: win, loss; never a time-out), next_* the same at t+1.
    """

    state: np.ndarray
    obs: np.ndarray
    actions: np.ndarray
    avail_actions: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    next_state: np.ndarray
    next_obs: np.ndarray
    next_avail_actions: np.ndarray

    def __len__(self) -> int:
        return int(self.state.shape[0])

    def select(self, idx: np.ndarray | slice) -> Transitions:
        return Transitions(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def to_torch(self, device="cpu") -> dict:
        """A dict of torch tensors (floats as float32, actions int64 or float32, masks bool)."""
        import torch

        return {f.name: torch.as_tensor(getattr(self, f.name), device=device) for f in fields(self)}

    @property
    def dims(self) -> Dims:
        discrete = self.actions.ndim == 2
        return Dims(
            n_agents=self.obs.shape[1],
            obs_dim=self.obs.shape[2],
            state_dim=self.state.shape[1],
            n_actions=self.avail_actions.shape[2] if discrete else self.actions.shape[2],
            discrete=discrete,
        )

    @staticmethod
    def concat(parts: list[Transitions]) -> Transitions:
        return Transitions(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Transitions)}
        )

    def with_reward(self, reward: np.ndarray) -> Transitions:
        return replace(self, reward=reward.astype(np.float32))


def episodes_to_transitions(
    state: np.ndarray,
    obs: np.ndarray,
    actions: np.ndarray,
    avail_actions: np.ndarray | None,
    reward: np.ndarray,
    terminated: np.ndarray,
    filled: np.ndarray,
) -> Transitions:
    """Flatten episode-major arrays in the canonical layout into transitions.

    Shapes as in docs/data.md: state [E,L,S], obs [E,L,N,O], actions [E,L,N,1] (discrete, int) or
    [E,L,N,Ad] (continuous), avail_actions [E,L,N,A] or None, reward/terminated/filled [E,L,1].
    Row t of an episode of length l (l = filled.sum() - 1) gives the transition t -> t+1 for t < l.
    """
    filled = filled.reshape(filled.shape[0], filled.shape[1]).astype(bool)
    lengths = filled.sum(axis=1) - 1
    E, L = filled.shape
    t_idx = np.arange(L)[None, :]
    valid = t_idx < lengths[:, None]  # rows 0..l-1 have a successor row
    e, t = np.nonzero(valid)
    discrete = np.issubdtype(actions.dtype, np.integer)
    acts = actions[e, t]
    acts = acts[..., 0].astype(np.int64) if discrete else acts.astype(np.float32)
    if avail_actions is None:
        n_agents = obs.shape[2]
        avail = np.ones((len(e), n_agents, 1), dtype=bool)
        next_avail = avail
    else:
        avail = avail_actions[e, t].astype(bool)
        next_avail = avail_actions[e, t + 1].astype(bool)
    return Transitions(
        state=state[e, t].astype(np.float32),
        obs=obs[e, t].astype(np.float32),
        actions=acts,
        avail_actions=avail,
        reward=reward.reshape(E, L)[e, t].astype(np.float32),
        terminated=terminated.reshape(E, L)[e, t].astype(bool),
        next_state=state[e, t + 1].astype(np.float32),
        next_obs=obs[e, t + 1].astype(np.float32),
        next_avail_actions=next_avail,
    )
