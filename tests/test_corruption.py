"""Controlled corruption of world-model predictions (models/corruption.py) on hand-made data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo_cli.errors import LogoError
from logo_cli.models.corruption import CorruptedModel, Corruption, corrupt, group_means, switch_groups
from logo_cli.models.wm_base import Prediction

U = 4  # features per other unit: health, x, y, last move (zero when the unit stood still)


def unit_lists(rows: int = 400, units: int = 3, seed: int = 0) -> np.ndarray:
    """Observations [rows, 1, units*U + 2]: blocks of other units that are present or not, and two
    own features that never switch."""
    rng = np.random.default_rng(seed)
    obs = np.zeros((rows, 1, units * U + 2), np.float32)
    for u in range(units):
        present = rng.random(rows) < 0.6
        block = rng.uniform(0.1, 1.0, (rows, U)).astype(np.float32)
        block[:, 3] *= rng.random(rows) < 0.5  # last move: zero half the time even when present
        obs[:, 0, u * U : (u + 1) * U] = block * present[:, None]
    obs[:, 0, -2:] = rng.uniform(0.1, 1.0, (rows, 2))
    obs[:5] = 0.0  # dead agents: all-zero rows say nothing of the groups
    return obs


def test_switch_groups_are_the_unit_blocks_with_their_sometimes_zero_features():
    groups = switch_groups(unit_lists())
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    means = group_means(unit_lists(), groups)
    assert all(m.shape == (4,) and (m[:3] > 0.3).all() for m in means)


class Fixed:
    """A stand-in model: fixed predictions and unit normalisers of known scale."""

    def __init__(self, obs: torch.Tensor, n_actions: int = 5):
        b, n, o = obs.shape
        self.obs, self.noop_action = obs, 4
        scale = lambda k, v: type("N", (), {"std": torch.full((k,), v)})()  # noqa: E731
        self.norm_obs, self.norm_state, self.norm_reward = scale(o, 2.0), scale(3, 1.0), scale(1, 0.5)
        self.n_actions = n_actions

    def predict(self, state, obs, actions, *, sample=False, generator=None):
        b = self.obs.shape[0]
        avail = torch.zeros(b, self.obs.shape[1], self.n_actions, dtype=torch.bool)
        avail[..., :2] = True
        avail[..., 4] = True
        return Prediction(
            next_state=torch.ones(b, 3), next_obs=self.obs.clone(), reward=torch.zeros(b),
            terminated_prob=torch.zeros(b), next_avail=avail, uncertainty=torch.zeros(b),
        )  # fmt: skip


def test_each_corruption_does_what_it_says():
    obs = torch.as_tensor(unit_lists(rows=2000))
    model = Fixed(obs)
    gen = torch.Generator().manual_seed(0)
    clean = model.predict(None, None, None)

    noisy = CorruptedModel(model, Corruption(obs_noise=0.5), obs.numpy()).predict(
        None, None, None, generator=gen
    )
    zero = clean.next_obs == 0
    assert torch.equal(noisy.next_obs[zero], clean.next_obs[zero])  # absent stays absent
    sd = float((noisy.next_obs - clean.next_obs)[~zero].std())
    assert abs(sd - 0.5 * 2.0) < 0.05  # 0.5 standard deviations of 2.0

    flipped = CorruptedModel(model, Corruption(avail_flip=1.0), obs.numpy()).predict(
        None, None, None, generator=gen
    )
    expected = ~clean.next_avail
    expected[..., 4] = True  # the no-op is never flipped
    assert torch.equal(flipped.next_avail, expected)

    switched = CorruptedModel(model, Corruption(switch_flip=1.0), obs.numpy()).predict(
        None, None, None, generator=gen
    )
    for lo in (0, 4, 8):
        was = (clean.next_obs[..., lo : lo + U] != 0).any(-1)
        now = (switched.next_obs[..., lo : lo + U] != 0).any(-1)
        assert torch.equal(now, ~was)  # present -> gone, absent -> present at the data's mean
    assert torch.equal(switched.next_obs[..., -2:], clean.next_obs[..., -2:])  # never-switching features

    rew = CorruptedModel(model, Corruption(reward_noise=2.0), obs.numpy()).predict(
        None, None, None, generator=gen
    )
    assert abs(float(rew.reward.std()) - 2.0 * 0.5) < 0.1
    st = corrupt(clean, Corruption(state_noise=1.0), model, [], [], gen)
    assert abs(float((st.next_state - 1).std()) - 1.0) < 0.1


def test_corruption_is_repeatable_and_off_by_default():
    obs = torch.as_tensor(unit_lists())
    model = Fixed(obs)
    c = Corruption(obs_noise=0.3, switch_flip=0.1, avail_flip=0.1)
    wrapped = CorruptedModel(model, c, obs.numpy())
    a = wrapped.predict(None, None, None, generator=torch.Generator().manual_seed(5))
    b = wrapped.predict(None, None, None, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.next_obs, b.next_obs) and torch.equal(a.next_avail, b.next_avail)
    assert not Corruption().active and c.active
    assert wrapped.noop_action == 4  # everything else is the model's


@pytest.mark.parametrize("levels", [{"obs_noise": -1.0}, {"avail_flip": 1.5}, {"reward_noise": float("nan")}])
def test_bad_levels_are_refused_in_one_line(levels):
    with pytest.raises(LogoError, match="--"):
        Corruption(**levels)


def test_no_noise_on_features_that_never_vary_and_values_stay_in_the_data_range():
    obs = torch.as_tensor(unit_lists())
    model = Fixed(obs)
    model.state_lo, model.state_hi = torch.tensor([0.0, 1.0, 0.5]), torch.tensor([2.0, 1.0, 1.2])
    clean = model.predict(None, None, None)
    gen = torch.Generator().manual_seed(1)
    out = corrupt(clean, Corruption(state_noise=3.0), model, [], [], gen)
    assert torch.equal(out.next_state[:, 1], clean.next_state[:, 1])  # a constant (team/type) feature
    assert bool((out.next_state[:, 0] != 1).any())  # a varying one gets noise
    assert float(out.next_state[:, 0].min()) >= 0.0 and float(out.next_state[:, 0].max()) <= 2.0
    assert float(out.next_state[:, 2].max()) <= float(model.state_hi[2])
