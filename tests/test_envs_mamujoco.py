"""MaMuJoCo adapter specifics: dims, obs padding, the action mapping, the shared team reward."""

from __future__ import annotations

import numpy as np
import pytest

from logo_cli.errors import LogoError

pytest.importorskip("gymnasium_robotics")

from logo_cli.envs.mamujoco import MaMuJoCoEnv  # noqa: E402


def _ctrl(env: MaMuJoCoEnv, b: int = 0) -> np.ndarray:
    return np.asarray(env._envs[b].single_agent_env.unwrapped.data.ctrl)


def test_halfcheetah_2x3_dims_and_defaults():
    env = MaMuJoCoEnv("HalfCheetah-2x3", num_envs=2)
    s = env.spec
    assert (s.n_agents, s.obs_dim, s.state_dim, s.n_actions) == (2, 12, 17, 3)
    assert not s.discrete and s.noop_action is None and s.episode_limit == 1000
    o = env.reset(0)
    # The global state is the single-agent HalfCheetah observation (qpos without x, qvel).
    np.testing.assert_allclose(o.state[1], env._envs[1].single_agent_env.unwrapped._get_obs(), rtol=1e-6)
    out = env.step(np.zeros((2, 2, 3), dtype=np.float32))
    assert not out.won.any() and not out.done.any()
    env.close()


def test_actions_map_onto_each_agents_joints_and_box():
    env = MaMuJoCoEnv("HalfCheetah-2x3")
    env.reset(0)
    a = np.array([[[0.1, -0.2, 0.3], [2.0, -0.5, 0.0]]], dtype=np.float32)
    env.step(a)
    # Agent 0 drives the back leg (actuators 0-2), agent 1 the front leg (3-5); out-of-box values clip.
    np.testing.assert_allclose(_ctrl(env), [0.1, -0.2, 0.3, 1.0, -0.5, 0.0], rtol=1e-6)

    # Humanoid 9|8: a [-0.4, 0.4] box and uneven action sizes; agent 1's 9th entry is padding.
    env = MaMuJoCoEnv("Humanoid-9|8")
    assert env.spec.n_actions == 9 and env.spec.obs_dim == 242
    env.reset(0)
    a = np.zeros((1, 2, 9), dtype=np.float32)
    a[0, 0, :] = 1.0
    a[0, 1, :8] = -1.0
    a[0, 1, 8] = 0.7  # ignored
    env.step(a)
    ctrl = _ctrl(env)
    assert ctrl.shape == (17,)
    np.testing.assert_allclose(np.sort(ctrl), [-0.4] * 8 + [0.4] * 9, rtol=1e-6)


def test_uneven_observations_are_zero_padded_and_falls_terminate():
    env = MaMuJoCoEnv("Hopper-3x1", num_envs=2)
    assert env.spec.obs_dim == 9 and env.spec.n_actions == 1
    o = env.reset(3)
    raw, _ = env._envs[0].reset(seed=int(np.random.SeedSequence(3).generate_state(2)[0]))
    np.testing.assert_allclose(o.obs[0, 0, :8], raw["agent_0"], rtol=1e-6)
    assert (o.obs[:, [0, 2], 8] == 0).all()  # agents 0 and 2 see 8 numbers, agent 1 sees 9
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(150):
        out = env.step(rng.uniform(-1, 1, (2, 3, 1)).astype(np.float32))
        assert (out.next.obs[:, [0, 2], 8] == 0).all()
        assert not out.truncated.any()  # far from the 1000-step limit: every end is a fall
        ends += int(out.terminated.sum())
    assert ends >= 2, "random Hoppers fall within 150 steps"


def test_team_reward_equals_single_agent_reward():
    import gymnasium

    env = MaMuJoCoEnv("HalfCheetah-2x3")
    env.reset(11)
    single = gymnasium.make("HalfCheetah-v5")
    single.reset(seed=int(np.random.SeedSequence(11).generate_state(1)[0]))
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = rng.uniform(-1, 1, (1, 2, 3)).astype(np.float32)
        out = env.step(a)
        _, r, *_ = single.step(a.reshape(6))
        assert out.reward[0] == pytest.approx(r, rel=1e-5)


def test_bad_task_and_actions():
    with pytest.raises(LogoError, match="HalfCheetah-7x9"):
        MaMuJoCoEnv("HalfCheetah-7x9")
    with pytest.raises(LogoError, match="<Task>-<agent conf>"):
        MaMuJoCoEnv("HalfCheetah")
    env = MaMuJoCoEnv("HalfCheetah-2x3")
    with pytest.raises(LogoError, match="before reset"):
        env.step(np.zeros((1, 2, 3), dtype=np.float32))
    env.reset(0)
    with pytest.raises(LogoError, match="expected"):
        env.step(np.zeros((1, 2, 2), dtype=np.float32))
