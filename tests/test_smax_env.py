"""SmaxEnv: dims, seeding, terminal transitions (next vs reset), win/time-out flags."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jaxmarl")

from logo_cli.envs.base import MultiAgentEnv  # noqa: E402
from logo_cli.envs.smax import STOP_ACTION, SmaxEnv  # noqa: E402
from logo_cli.errors import LogoError  # noqa: E402


@pytest.fixture(scope="module")
def env() -> SmaxEnv:
    return SmaxEnv("3m", num_envs=8)


def _attacker(avail: np.ndarray) -> np.ndarray:
    """Attack the first enemy in range, else walk east (towards the enemy): wins about half the time."""
    can = avail[..., STOP_ACTION + 1 :]
    return np.where(can.any(-1), STOP_ACTION + 1 + can.argmax(-1), 1).astype(np.int64)


def _run(env: SmaxEnv, seed: int, steps: int) -> list:
    o = env.reset(seed)
    out = [o]
    for _ in range(steps):
        st = env.step(_attacker(o.avail_actions))
        out.append(st)
        o = st.reset
    return out


def test_dims_and_dtypes(env):
    assert isinstance(env, MultiAgentEnv)
    s = env.spec
    assert (s.name, s.n_agents, s.obs_dim, s.state_dim, s.n_actions) == ("smax:3m", 3, 75, 72, 8)
    assert s.discrete and s.episode_limit == 100 and s.noop_action == STOP_ACTION
    o = env.reset(0)
    assert o.obs.shape == (8, 3, 75) and o.obs.dtype == np.float32
    assert o.state.shape == (8, 72) and o.state.dtype == np.float32
    assert o.avail_actions.shape == (8, 3, 8) and o.avail_actions.dtype == bool
    # at the start everyone is alive: all moves and stop available, nobody in range yet
    assert o.avail_actions[..., :5].all() and not o.avail_actions[..., 5:].any()


def test_same_seed_same_episodes_other_seed_differs(env):
    a, b, c = _run(env, 3, 40), _run(env, 3, 40), _run(env, 4, 40)
    np.testing.assert_array_equal(a[0].obs, b[0].obs)
    for x, y in zip(a[1:], b[1:], strict=True):
        np.testing.assert_array_equal(x.next.state, y.next.state)
        np.testing.assert_array_equal(x.reward, y.reward)
        np.testing.assert_array_equal(x.reset.obs, y.reset.obs)
    assert not np.array_equal(a[0].state, c[0].state)


def test_terminal_rows_keep_final_obs_and_flags_agree_with_reward(env):
    steps = _run(env, 11, 150)[1:]
    ends = 0
    for st in steps:
        going = ~st.done
        np.testing.assert_array_equal(st.next.obs[going], st.reset.obs[going])
        np.testing.assert_array_equal(st.next.state[going], st.reset.state[going])
        for b in np.nonzero(st.done)[0]:
            ends += 1
            # the reset observation is a fresh start: every unit alive, nobody in range
            assert not np.array_equal(st.next.obs[b], st.reset.obs[b])
            assert st.reset.avail_actions[b, :, :5].all() and not st.reset.avail_actions[b, :, 5:].any()
            assert st.won[b] == (st.reward[b] >= 1.0)
            assert st.terminated[b] != st.truncated[b]
        assert not (st.won & ~st.terminated).any()
        assert (st.reward >= 0).all() and (st.reward <= 2.0 + 1e-5).all()
    # the attacker both wins and loses some: a broken win flag would fail one side
    won = np.concatenate([st.won[st.done] for st in steps])
    assert ends > 10 and 0 < won.sum() < len(won)


def test_dead_agents_can_only_stop(env):
    for st in _run(env, 5, 60)[1:]:
        av = st.next.avail_actions
        dead = ~av[..., :4].any(-1)  # a live agent can always move
        assert av[..., STOP_ACTION].all()
        assert not av[dead][:, [0, 1, 2, 3, 5, 6, 7]].any()


def test_time_limit_is_truncation_not_termination():
    env = SmaxEnv("3m", num_envs=8, max_steps=5)
    assert env.spec.episode_limit == 5
    env.reset(0)
    stop = np.full((8, 3), STOP_ACTION)
    for t in range(5):
        st = env.step(stop)
        assert st.truncated.all() == (t == 4) and not st.terminated.any()
    # the next episode starts over: another 5 steps to the limit
    assert not env.step(stop).done.any()


def test_bad_inputs_are_one_line_errors(env):
    with pytest.raises(LogoError, match="unknown SMAX scenario"):
        SmaxEnv("4m_vs_nothing")
    env.reset(0)
    with pytest.raises(LogoError, match="actions of shape"):
        env.step(np.zeros((8, 2), dtype=np.int64))
