"""MaMuJoCo (gymnasium-robotics `mamujoco_v1`) behind the batched env protocol.

MaMuJoCo has no native batching, so `num_envs` independent PettingZoo parallel envs are stepped in a
loop. Conventions chosen here (see docs/environments.md):
- per-agent observations are zero-padded at the end to the widest agent's size (Hopper 3x1: 8/9/8);
- actions are [B,N,Ad] in [-1, 1] with Ad the largest per-agent action size; agent i reads the first
  ad_i entries of its row (the rest is ignored) and they are mapped linearly onto its action box
  (the identity for every task whose box is [-1, 1]; Humanoid's is [-0.4, 0.4]);
- every agent receives the same shared reward from MaMuJoCo, so the team reward is that value;
- nothing is "won"; terminated = the robot fell (Hopper, Walker2d, Ant), truncated = the time limit.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr

import numpy as np

from logo_cli.envs.base import EnvObs, EnvSpec, EnvStep
from logo_cli.errors import LogoError

INSTALL_HINT = "install it with `pip install logo-cli[mamujoco]` (gymnasium-robotics and mujoco)"


def split_task(task: str) -> tuple[str, str]:
    """'HalfCheetah-2x3' -> ('HalfCheetah', '2x3'); the scenario never contains '-'."""
    scenario, sep, conf = task.partition("-")
    if not sep or not scenario or not conf:
        raise LogoError(f"mamujoco:{task}: expected <Task>-<agent conf>, e.g. mamujoco:HalfCheetah-2x3")
    return scenario, conf


@contextmanager
def _collect_mujoco_warnings(sink: list[str]) -> Iterator[None]:
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def keep(msg: str) -> None:
        if msg not in sink:
            sink.append(msg)

    mujoco.set_mju_user_warning(keep)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


class MaMuJoCoEnv:
    """`num_envs` copies of one MaMuJoCo task, e.g. MaMuJoCoEnv("HalfCheetah-2x3", num_envs=8)."""

    def __init__(self, task: str, num_envs: int = 1, agent_obsk: int = 1, max_steps: int | None = None):
        if num_envs < 1:
            raise LogoError(f"num_envs: must be at least 1, got {num_envs}")
        if max_steps is not None and max_steps < 1:
            raise LogoError(f"max_steps: must be at least 1, got {max_steps}")
        scenario, conf = split_task(task)
        try:
            # Its import prints a notice about the Adroit hand envs on stderr, unrelated to MaMuJoCo.
            with redirect_stderr(io.StringIO()):
                from gymnasium_robotics import mamujoco_v1
        except ImportError as e:
            raise LogoError(
                f"mamujoco:{task}: gymnasium-robotics is not importable ({e}); {INSTALL_HINT}"
            ) from None

        # max_episode_steps goes to gymnasium.make's TimeLimit, so truncation stays the library's own.
        kwargs = {} if max_steps is None else {"max_episode_steps": int(max_steps)}
        # MuJoCo's compiler warns on stderr for every env built (HalfCheetah's XML uses a deprecated
        # attribute); collect its warnings once, in `self.warnings`, instead of 64 copies on stderr.
        self.warnings: list[str] = []
        with _collect_mujoco_warnings(self.warnings):
            try:
                self._envs = [
                    mamujoco_v1.parallel_env(scenario, conf, agent_obsk=agent_obsk, **kwargs)
                    for _ in range(num_envs)
                ]
            except Exception as e:  # the library raises bare exceptions on unknown tasks or confs
                raise LogoError(f"mamujoco:{task}: not a MaMuJoCo task/agent conf ({e})") from None

        env = self._envs[0]
        self._agents = list(env.possible_agents)
        self._obs_dims = [int(env.observation_space(a).shape[0]) for a in self._agents]
        self._act_dims = [int(env.action_space(a).shape[0]) for a in self._agents]
        self._low = [np.asarray(env.action_space(a).low, dtype=np.float64) for a in self._agents]
        self._high = [np.asarray(env.action_space(a).high, dtype=np.float64) for a in self._agents]
        limit = env.single_agent_env.spec.max_episode_steps
        self.num_envs = num_envs
        self.spec = EnvSpec(
            name=f"mamujoco:{task}",
            n_agents=len(self._agents),
            obs_dim=max(self._obs_dims),
            state_dim=int(env.state().shape[0]),
            n_actions=max(self._act_dims),
            discrete=False,
            episode_limit=int(limit),
            noop_action=None,
            winnable=False,  # locomotion: nothing is won
        )
        self._started = False

    # -- observation assembly ------------------------------------------------------------------------
    def _team_obs(self, env, obs: dict) -> tuple[np.ndarray, np.ndarray]:
        o = np.zeros((self.spec.n_agents, self.spec.obs_dim), dtype=np.float32)
        for i, a in enumerate(self._agents):
            o[i, : self._obs_dims[i]] = obs[a]
        return o, np.asarray(env.state(), dtype=np.float32)

    def _batch(self, per_env: list[tuple[np.ndarray, np.ndarray]]) -> EnvObs:
        obs = np.stack([p[0] for p in per_env])
        state = np.stack([p[1] for p in per_env])
        avail = np.ones((self.num_envs, self.spec.n_agents, 1), dtype=bool)
        return EnvObs(obs=obs, state=state, avail_actions=avail)

    # -- protocol ------------------------------------------------------------------------------------
    def reset(self, seed: int) -> EnvObs:
        # Distinct, well-mixed per-env seeds; later episodes continue each env's own seeded RNG,
        # so the whole sequence of episodes is fixed by `seed`.
        seeds = np.random.SeedSequence(seed).generate_state(self.num_envs)
        per_env = []
        for env, s in zip(self._envs, seeds, strict=True):
            obs, _ = env.reset(seed=int(s))
            per_env.append(self._team_obs(env, obs))
        self._started = True
        return self._batch(per_env)

    def _agent_actions(self, row: np.ndarray) -> dict[str, np.ndarray]:
        acts = {}
        for i, a in enumerate(self._agents):
            u = np.clip(row[i, : self._act_dims[i]].astype(np.float64), -1.0, 1.0)
            acts[a] = (self._low[i] + (u + 1.0) * 0.5 * (self._high[i] - self._low[i])).astype(np.float32)
        return acts

    def step(self, actions: np.ndarray) -> EnvStep:
        if not self._started:
            raise LogoError(f"{self.spec.name}: step() called before reset()")
        actions = np.asarray(actions)
        want = (self.num_envs, self.spec.n_agents, self.spec.n_actions)
        if actions.shape != want:
            raise LogoError(f"{self.spec.name}: actions have shape {actions.shape}, expected {want}")
        B = self.num_envs
        reward = np.zeros(B, dtype=np.float32)
        terminated = np.zeros(B, dtype=bool)
        truncated = np.zeros(B, dtype=bool)
        nxt, rst = [], []
        for b, env in enumerate(self._envs):
            obs, rew, term, trunc, _ = env.step(self._agent_actions(actions[b]))
            # MaMuJoCo hands every agent the same reward and flags; agent 0's are the team's.
            a0 = self._agents[0]
            reward[b] = rew[a0]
            terminated[b] = bool(term[a0])
            truncated[b] = bool(trunc[a0]) and not terminated[b]
            cur = self._team_obs(env, obs)
            nxt.append(cur)
            if terminated[b] or truncated[b]:
                obs, _ = env.reset()
                cur = self._team_obs(env, obs)
            rst.append(cur)
        return EnvStep(
            next=self._batch(nxt),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            won=np.zeros(B, dtype=bool),
            reset=self._batch(rst),
        )

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs = []
