"""generate_rollouts with a scripted stand-in world model: availability, termination, bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from logo_cli.data.transitions import Dims, Transitions
from logo_cli.errors import LogoError
from logo_cli.policies.random_policy import RandomPolicy
from logo_cli.stages.rollout import generate_rollouts

DIMS = Dims(n_agents=2, obs_dim=3, state_dim=4, n_actions=5)
RNG = np.random.default_rng


@dataclass
class Pred:
    next_state: torch.Tensor
    next_obs: torch.Tensor
    reward: torch.Tensor
    terminated_prob: torch.Tensor
    next_avail: torch.Tensor
    uncertainty: torch.Tensor


class ScriptedModel:
    """state[0] counts steps; the branch terminates when the count reaches state[1].

    Next available actions: agent i may take only action (i + count) % A, so a step's actions are
    fully determined by the previous prediction, and anything ignoring it is caught.
    """

    kind = "scripted"

    def __init__(self):
        self.batch_sizes: list[int] = []

    def predict(self, state, obs, actions, *, sample=False, generator=None):
        b = state.shape[0]
        self.batch_sizes.append(b)
        nstate = state.clone()
        nstate[:, 0] += 1
        nstate[:, 2] = actions.sum(-1).float()  # remember the joint action taken
        count = nstate[:, 0].long()
        allowed = (torch.arange(DIMS.n_agents)[None, :] + count[:, None]) % DIMS.n_actions
        avail = torch.nn.functional.one_hot(allowed, DIMS.n_actions).bool()
        term = (nstate[:, 0] >= nstate[:, 1]).float()
        return Pred(
            next_state=nstate,
            next_obs=obs + 1.0,
            reward=actions.sum(-1).float() * 0.1,
            terminated_prob=term,
            next_avail=avail,
            uncertainty=nstate[:, 0] * 0.5,
        )


def make_starts(term_steps: list[int]) -> Transitions:
    t = len(term_steps)
    n, o, s, a = DIMS.n_agents, DIMS.obs_dim, DIMS.state_dim, DIMS.n_actions
    state = np.zeros((t, s), np.float32)
    state[:, 1] = term_steps
    state[:, 3] = np.arange(t)  # identifies the start
    avail = np.ones((t, n, a), bool)
    avail[:, :, 0] = False  # the dataset's avail must be respected on the first step too
    z = np.zeros(t, np.float32)
    return Transitions(
        state=state,
        obs=np.zeros((t, n, o), np.float32),
        actions=np.zeros((t, n), np.int64),
        avail_actions=avail,
        reward=z,
        terminated=z.astype(bool),
        next_state=state,
        next_obs=np.zeros((t, n, o), np.float32),
        next_avail_actions=avail,
    )


def collect(term_steps, horizon=6, batch_size=4, seed=0, **kw):
    model = ScriptedModel()
    parts = list(
        generate_rollouts(
            model, RandomPolicy(), make_starts(term_steps), horizon, batch_size,
            np.random.default_rng(seed), "cpu", **kw,
        )
    )  # fmt: skip
    rows = Transitions.concat([p[0] for p in parts])
    unc, step, branch = (np.concatenate([p[i] for p in parts]) for i in (1, 2, 3))
    return model, rows, unc, step, branch


def test_branches_end_at_predicted_termination_or_horizon():
    term_steps = [1, 3, 100, 6, 2, 7, 100, 4, 5, 1]
    horizon = 6
    model, rows, unc, step, branch = collect(term_steps, horizon=horizon)
    assert max(model.batch_sizes) == 4  # never above the batch size
    assert sorted(set(branch.tolist())) == list(range(len(term_steps)))
    for b, t_end in enumerate(term_steps):
        mine = np.nonzero(branch == b)[0]
        length = min(t_end, horizon)
        assert len(mine) == length, (b, t_end)
        np.testing.assert_array_equal(step[mine], np.arange(length))
        expected_term = np.zeros(length, bool)
        if t_end <= horizon:
            expected_term[-1] = True  # ended by the model, recorded as terminated
        np.testing.assert_array_equal(rows.terminated[mine], expected_term)
        assert (rows.state[mine, 3] == b).all()
        # each step continues from the previous prediction, including its available actions
        np.testing.assert_array_equal(rows.state[mine[1:]], rows.next_state[mine[:-1]])
        np.testing.assert_array_equal(rows.obs[mine[1:]], rows.next_obs[mine[:-1]])
        np.testing.assert_array_equal(rows.avail_actions[mine[1:]], rows.next_avail_actions[mine[:-1]])
        np.testing.assert_allclose(unc[mine], (np.arange(length) + 1) * 0.5)
    assert step.dtype == np.int16 and branch.dtype == np.int64


def test_actions_are_always_available():
    _, rows, *_ = collect([100] * 12, horizon=8, batch_size=5)
    chosen = np.take_along_axis(rows.avail_actions, rows.actions[..., None], axis=-1)
    assert chosen.all()
    assert (rows.actions[rows.state[:, 0] == 0] != 0).all()  # action 0 is unavailable at the start
    # after the first step the model allows exactly one action per agent: (i + count) % A
    later = rows.state[:, 0] > 0
    count = rows.state[later, 0].astype(int)
    expected = (np.arange(DIMS.n_agents)[None, :] + count[:, None]) % DIMS.n_actions
    np.testing.assert_array_equal(rows.actions[later], expected)


def test_same_seed_same_rollouts_and_branch_offset():
    _, a, *_ = collect([3, 100, 2, 5], seed=7)
    _, b, *_ = collect([3, 100, 2, 5], seed=7)
    np.testing.assert_array_equal(a.actions, b.actions)
    *_, branch = collect([3, 100], branch_offset=1000)
    assert set(branch.tolist()) == {1000, 1001}


class AlwaysZero:
    def act(self, obs, state, avail, *, greedy, rng):
        return np.zeros(avail.shape[:2], np.int64)


def test_a_policy_picking_unavailable_actions_is_refused():
    with pytest.raises(LogoError, match="unavailable"):
        list(generate_rollouts(ScriptedModel(), AlwaysZero(), make_starts([3]), 4, 2, RNG()))


def test_bad_horizon_is_refused():
    with pytest.raises(LogoError, match="horizon"):
        list(generate_rollouts(ScriptedModel(), RandomPolicy(), make_starts([3]), 0, 2, RNG()))


class HalfChanceModel(ScriptedModel):
    """Predicts termination with probability 0.3 at every step, and rewards of -1 or 2."""

    def predict(self, state, obs, actions, *, sample=False, generator=None):
        pred = super().predict(state, obs, actions)
        pred.terminated_prob = torch.full((state.shape[0],), 0.3)
        pred.reward = torch.where(state[:, 3] % 2 == 0, -1.0, 2.0)
        return pred


def test_sampled_termination_follows_the_predicted_probability_and_rewards_are_clipped():
    starts = make_starts([100] * 4000)
    rows_of = lambda **kw: list(  # noqa: E731
        generate_rollouts(HalfChanceModel(), RandomPolicy(), starts, 15, 512, np.random.default_rng(0), **kw)
    )
    parts = rows_of(termination="sample", reward_range=(0.0, 1.5))
    rows = Transitions.concat([p[0] for p in parts])
    step = np.concatenate([p[2] for p in parts])
    # Each step ends a branch with probability 0.3: ~30% of rows are terminal, first-step ends ~30%.
    assert rows.terminated.mean() == pytest.approx(0.3, abs=0.02)
    assert rows.terminated[step == 0].mean() == pytest.approx(0.3, abs=0.03)
    assert rows.reward.min() == 0.0 and rows.reward.max() == 1.5  # clipped to the given range
    # Thresholding at 0.5 never ends a branch whose probability stays at 0.3: all reach the horizon.
    parts = rows_of(termination="threshold")
    rows = Transitions.concat([p[0] for p in parts])
    assert not rows.terminated.any() and len(rows) == 4000 * 15
    assert rows.reward.min() == -1.0  # no range: rewards as predicted
    with pytest.raises(LogoError, match="--termination"):
        rows_of(termination="bogus")
