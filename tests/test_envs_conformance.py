"""Every env adapter honours envs.base.MultiAgentEnv the same way (one parametrised test).

SMACv2 needs StarCraft II, which cannot run here, so its adapter is driven by `FakeStarCraft2Env`:
a tiny seeded, scripted 3-vs-3 battle behind StarCraft2Env's API (get_env_info, reset, get_obs,
get_state, get_avail_agent_actions, step -> (reward, terminated, info) with "battle_won" and, under
continuing_episode, "episode_limit"; no-op 0 only for the dead; actions must be available).
"""

from __future__ import annotations

import numpy as np
import pytest

from logo_cli.envs.base import EnvObs, EnvStep, MultiAgentEnv


class FakeStarCraft2Env:
    """A deterministic (given `seed`) scripted battle with StarCraft2Env's interface.

    Actions: 0 no-op (dead only), 1 stop, 2-5 move, 6+j attack enemy j (while it lives).
    Each attack removes 0.5 of the target's health; every living enemy hits a random living ally
    for a random 0-0.25. Reward = enemy health removed this step, +1 on a win.
    """

    N_ALLY = 3
    N_ENEMY = 3
    LIMIT = 8
    launches = 0  # how many games were started, to check the adapter's relaunch-on-seed policy

    def __init__(self, map_name: str = "3m", seed: int | None = None, continuing_episode: bool = False, **_):
        self.map_name = map_name
        self.continuing_episode = continuing_episode
        self._seed = seed
        self._rng: np.random.Generator | None = None
        self.episode_limit = self.LIMIT
        self.n_actions = 6 + self.N_ENEMY
        self.closed = False

    def get_env_info(self) -> dict:
        return {
            "n_agents": self.N_ALLY,
            "n_actions": self.n_actions,
            "obs_shape": 2 + self.N_ENEMY + self.N_ALLY,
            "state_shape": 2 * self.N_ALLY + self.N_ENEMY + 1,
            "episode_limit": self.episode_limit,
        }

    def reset(self):
        if self._rng is None:  # the game "launches" on the first reset, taking its seed then
            self._rng = np.random.default_rng(self._seed)
            FakeStarCraft2Env.launches += 1
        self.t = 0
        self.ally_hp = np.ones(self.N_ALLY)
        self.enemy_hp = np.ones(self.N_ENEMY)
        self.ally_y = self._rng.uniform(-1, 1, self.N_ALLY)
        return self.get_obs(), self.get_state()

    def get_obs_agent(self, i: int) -> np.ndarray:
        if self.ally_hp[i] <= 0:
            return np.zeros(2 + self.N_ENEMY + self.N_ALLY, dtype=np.float32)
        return np.concatenate([[self.ally_hp[i], self.ally_y[i]], self.enemy_hp, self.ally_hp]).astype(
            np.float32
        )

    def get_obs(self) -> list[np.ndarray]:
        return [self.get_obs_agent(i) for i in range(self.N_ALLY)]

    def get_state(self) -> np.ndarray:
        return np.concatenate([self.ally_hp, self.ally_y, self.enemy_hp, [self.t / self.LIMIT]]).astype(
            np.float32
        )

    def get_avail_agent_actions(self, i: int) -> list[int]:
        avail = [0] * self.n_actions
        if self.ally_hp[i] <= 0:
            avail[0] = 1
            return avail
        for a in range(1, 6):
            avail[a] = 1
        for j in range(self.N_ENEMY):
            avail[6 + j] = int(self.enemy_hp[j] > 0)
        return avail

    def step(self, actions: list[int]):
        for i, a in enumerate(actions):
            assert self.get_avail_agent_actions(i)[a] == 1, f"agent {i} cannot take action {a}"
        before = self.enemy_hp.sum()
        for i, a in enumerate(actions):
            if a >= 6:
                self.enemy_hp[a - 6] = max(0.0, self.enemy_hp[a - 6] - 0.5)
            elif 2 <= a <= 5:
                self.ally_y[i] += (0.1, -0.1, 0.0, 0.0)[a - 2]
        for _ in range(int((self.enemy_hp > 0).sum())):
            alive = np.flatnonzero(self.ally_hp > 0)
            if len(alive):
                k = self._rng.choice(alive)
                self.ally_hp[k] = max(0.0, self.ally_hp[k] - self._rng.uniform(0, 0.25))
        self.t += 1
        reward = float(before - self.enemy_hp.sum())
        info: dict = {"battle_won": False}
        won, lost = not (self.enemy_hp > 0).any(), not (self.ally_hp > 0).any()
        if won or lost:
            info["battle_won"] = bool(won and not lost)
            reward += 1.0 if info["battle_won"] else 0.0
            return reward, True, info
        if self.t >= self.episode_limit:
            if self.continuing_episode:
                info["episode_limit"] = True
            return reward, True, info
        return reward, False, info

    def close(self) -> None:
        self.closed = True


def _smax() -> MultiAgentEnv:
    pytest.importorskip("jaxmarl")
    from logo_cli.envs import make_env

    return make_env("smax:3m", num_envs=4, max_steps=10)


def _mamujoco(task: str):
    def make() -> MultiAgentEnv:
        pytest.importorskip("gymnasium_robotics")
        from logo_cli.envs import make_env

        return make_env(f"mamujoco:{task}", num_envs=3, max_steps=12)

    return make


def _smacv2_fake() -> MultiAgentEnv:
    from logo_cli.envs.smacv2 import SMACv2Env

    return SMACv2Env("3m", num_envs=4, backend=FakeStarCraft2Env)


CASES = {
    "smax:3m": _smax,
    "mamujoco:HalfCheetah-2x3": _mamujoco("HalfCheetah-2x3"),
    "mamujoco:Hopper-3x1": _mamujoco("Hopper-3x1"),  # uneven obs widths (8/9/8) and real falls
    "smacv2:3m (fake SC2)": _smacv2_fake,
}


@pytest.fixture(scope="module", params=list(CASES))
def env(request):
    e = CASES[request.param]()
    yield e
    e.close()


def _random_actions(env: MultiAgentEnv, o: EnvObs, rng: np.random.Generator) -> np.ndarray:
    spec = env.spec
    if not spec.discrete:
        return rng.uniform(-1, 1, (env.num_envs, spec.n_agents, spec.n_actions)).astype(np.float32)
    scores = rng.random(o.avail_actions.shape)
    scores[~o.avail_actions] = -1.0
    return scores.argmax(-1).astype(np.int64)


def _check_obs(env: MultiAgentEnv, o: EnvObs) -> None:
    s, B = env.spec, env.num_envs
    A = s.n_actions if s.discrete else 1
    assert o.obs.shape == (B, s.n_agents, s.obs_dim) and o.obs.dtype == np.float32
    assert o.state.shape == (B, s.state_dim) and o.state.dtype == np.float32
    assert o.avail_actions.shape == (B, s.n_agents, A) and o.avail_actions.dtype == np.bool_
    assert np.isfinite(o.obs).all() and np.isfinite(o.state).all()
    assert o.avail_actions.any(-1).all(), "every agent must have an available action"
    if not s.discrete:
        assert o.avail_actions.all()


def _rollout(env: MultiAgentEnv, seed: int, steps: int) -> tuple[list[EnvObs], list[EnvStep]]:
    rng = np.random.default_rng(seed)
    o = env.reset(seed)
    obs, outs = [o], []
    for _ in range(steps):
        out = env.step(_random_actions(env, o, rng))
        outs.append(out)
        o = out.reset
        obs.append(o)
    return obs, outs


def test_adapter_conforms(env: MultiAgentEnv):
    s = env.spec
    assert isinstance(env, MultiAgentEnv)
    assert s.n_agents >= 1 and s.obs_dim >= 1 and s.state_dim >= 1 and s.n_actions >= 1
    assert s.episode_limit >= 1 and env.num_envs >= 1
    if s.discrete:
        assert s.noop_action is not None and 0 <= s.noop_action < s.n_actions
    else:
        assert s.noop_action is None

    steps = 2 * s.episode_limit + 3  # enough to see every env end an episode at least twice
    obs, outs = _rollout(env, seed=7, steps=steps)
    _check_obs(env, obs[0])
    B = env.num_envs
    ends = np.zeros(B, dtype=int)
    for out in outs:
        _check_obs(env, out.next)
        _check_obs(env, out.reset)
        for name in ("reward", "terminated", "truncated", "won"):
            arr = getattr(out, name)
            assert arr.shape == (B,), name
        assert out.reward.dtype == np.float32 and np.isfinite(out.reward).all()
        assert (
            out.terminated.dtype == np.bool_ and out.truncated.dtype == np.bool_ and out.won.dtype == np.bool_
        )
        assert not (out.terminated & out.truncated).any()
        assert not (out.won & ~out.terminated).any(), "won implies terminated"
        done = out.done
        ends += done
        # Where the episode goes on, `reset` is `next`; where it ended, `reset` is a fresh start.
        go_on = ~done
        np.testing.assert_array_equal(out.reset.obs[go_on], out.next.obs[go_on])
        np.testing.assert_array_equal(out.reset.state[go_on], out.next.state[go_on])
        np.testing.assert_array_equal(out.reset.avail_actions[go_on], out.next.avail_actions[go_on])
        for b in np.flatnonzero(done):
            assert not np.array_equal(out.reset.state[b], out.next.state[b]), "done env did not restart"
        if s.discrete:
            # An agent whose observation is all zeros is dead: the no-op must be available to it.
            dead = ~out.next.obs.any(-1)
            assert out.next.avail_actions[..., s.noop_action][dead].all()
    assert (ends >= 1).all(), f"an env never ended an episode in {steps} steps: {ends}"

    # Same seed + same actions -> the same observations, rewards and ends.
    obs2, outs2 = _rollout(env, seed=7, steps=steps)
    for a, b in zip(obs, obs2, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.state, b.state)
    for a, b in zip(outs, outs2, strict=True):
        np.testing.assert_array_equal(a.reward, b.reward)
        np.testing.assert_array_equal(a.done, b.done)
    # ... and another seed gives other episodes.
    other = env.reset(8)
    assert not np.array_equal(other.state, obs[0].state)
