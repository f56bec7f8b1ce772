"""Controlled corruption of a world model's predictions: known errors of known size, to measure how
much error synthetic data can carry before it stops helping a policy (the error budget).

Each kind of error a learned model makes gets its own level:
  obs_noise     Gaussian noise on the next observations, in standardised units (× the model's
                per-feature observation std); only on features that are present (non-zero), so
                noise never makes an absent unit appear: that is `switch_flip`'s job;
  state_noise   the same for the next global state (× the state std);
  avail_flip    each next available action (but the no-op, always available) flipped with this
                probability;
  switch_flip   each switching group of an agent's next observation (a block of features that are
                zero together: another unit out of view or dead; see `switch_groups`) flipped with
                this probability: present -> zeros (the unit leaves view or dies), absent -> the
                group's mean when present in the data (the unit comes into view);
  reward_noise  Gaussian noise on the reward, × the model's reward std.
Features that never vary in the data (team and type ids) get no noise, and the corrupted next state
and observations are kept within the data's per-feature range, as a learned model's predictions are.
The corrupted prediction is what the rollout carries forward, so errors compound along a branch as a
learned model's do. The noise is drawn from the rollout's generator: a seeded rollout is repeatable.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from logo_cli.models.corruption_levels import Corruption, CorruptionLevels
from logo_cli.models.switch_groups import group_means, switch_groups
from logo_cli.models.wm_base import Prediction

__all__ = [
    "CorruptedModel",
    "Corruption",
    "CorruptionLevels",
    "corrupt",
    "corrupted",
    "group_means",
    "switch_groups",
]


def corrupted(model, corruption: Corruption, obs_data: np.ndarray):
    """`model`, or `model` wrapped to corrupt its predictions when any corruption level is set (the
    switching groups and their present means are found from `obs_data`, the dataset's observations)."""
    return CorruptedModel(model, corruption, obs_data) if corruption.active else model


class CorruptedModel:
    """A world model whose predictions are corrupted by `corruption`; everything else is the model's."""

    stochastic = True  # draws noise: rollouts hand it their generator

    def __init__(self, model, corruption: Corruption, obs_data: np.ndarray):
        self.model = model
        self.corruption = corruption
        groups = switch_groups(obs_data) if corruption.switch_flip > 0 else []
        self.groups = [torch.as_tensor(g) for g in groups]
        self.means = [torch.as_tensor(m, dtype=torch.float32) for m in group_means(obs_data, groups)]

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def to(self, device):
        self.model = self.model.to(device)
        return self

    def eval(self):
        self.model.eval()
        return self

    @torch.no_grad()
    def predict(self, state, obs, actions, *, sample: bool = False, generator=None) -> Prediction:
        pred = self.model.predict(state, obs, actions, sample=sample, generator=generator)
        return corrupt(pred, self.corruption, self.model, self.groups, self.means, generator)


def corrupt(pred: Prediction, c: Corruption, model, groups, means, generator) -> Prediction:
    """`pred` with the errors of `c` added (see the module's docstring)."""

    def normal(x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    def uniform(shape, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=like.device)

    next_obs, next_state = pred.next_obs.clone(), pred.next_state.clone()
    if c.obs_noise > 0:
        noise = normal(next_obs) * c.obs_noise * _spread(model, "obs", next_obs.device)
        next_obs = torch.where(next_obs != 0, next_obs + noise, next_obs)
    if c.state_noise > 0:
        noise = normal(next_state) * c.state_noise * _spread(model, "state", next_state.device)
        next_state = torch.where(next_state != 0, next_state + noise, next_state)
    for g, mean in zip(groups, means, strict=True):
        g = g.to(next_obs.device)
        block = next_obs[..., g]
        flip = uniform(block.shape[:-1], block) < c.switch_flip
        present = (block != 0).any(-1)
        appear = mean.to(block.device).expand_as(block)
        flipped = torch.where(present[..., None], torch.zeros_like(block), appear)
        next_obs[..., g] = torch.where(flip[..., None], flipped, block)
    next_avail = pred.next_avail
    if c.avail_flip > 0:
        flip = uniform(next_avail.shape, next_avail) < c.avail_flip
        flip[..., model.noop_action] = False
        next_avail = next_avail ^ flip
    reward = pred.reward
    if c.reward_noise > 0:
        reward = reward + normal(reward) * c.reward_noise * model.norm_reward.std.to(reward.device)
    # Within the data's per-feature range, as a learned model's predictions are kept.
    next_state = _within(next_state, model, "state")
    next_obs = _within(next_obs, model, "obs")
    return replace(pred, next_obs=next_obs, next_state=next_state, next_avail=next_avail, reward=reward)


def _spread(model, name: str, device) -> torch.Tensor:
    """The data's per-feature standard deviation, 0 for a feature that never varies (a team or type
    id): no model errs there, so no noise goes there either."""
    std = getattr(model, f"norm_{name}").std.to(device)
    lo, hi = getattr(model, f"{name}_lo", None), getattr(model, f"{name}_hi", None)
    if lo is None or hi is None:
        return std
    return std * (hi.to(device) > lo.to(device))


def _within(x: torch.Tensor, model, name: str) -> torch.Tensor:
    lo, hi = getattr(model, f"{name}_lo", None), getattr(model, f"{name}_hi", None)
    if lo is None or hi is None or not bool(torch.isfinite(lo).all() & torch.isfinite(hi).all()):
        return x
    return torch.minimum(torch.maximum(x, lo.to(x.device)), hi.to(x.device))
