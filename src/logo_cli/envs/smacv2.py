"""SMAC maps through the `smacv2` package's StarCraft2Env (needs StarCraft II), behind the env protocol.

`smacv2` is not on PyPI: it is installed from its git repository, and it drives the StarCraft II
binary, which finds its maps under $SC2PATH/Maps/SMAC_Maps. Never confuse it with `smac` on PyPI,
which is SMAC3, an AutoML optimiser: this module never imports `smac`.

`num_envs` StarCraft2Env instances (one SC2 process each) are stepped one after the other. The env
is built with `continuing_episode=True`, the only setting under which StarCraft2Env reports a
time-out as `info["episode_limit"]`; it is then `truncated`, not `terminated`. Only the fixed-team
maps (3m, 5m_vs_6m, 6h_vs_8z, 2s3z, ...) are offered: the procedurally generated `10gen_*` tasks draw
their teams from unseeded RNGs inside smacv2, so their episodes could not be reproduced from a seed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from logo_cli.envs.base import EnvObs, EnvSpec, EnvStep
from logo_cli.errors import LogoError

SMACV2_GIT = "git+https://github.com/oxwhirl/smacv2.git"
INSTALL_HINT = (
    f"install it with `pip install {SMACV2_GIT}` (not `smac` from PyPI, which is SMAC3, an AutoML tool), "
    "install StarCraft II (Linux: Blizzard's s2client-proto downloads, unzipped to ~/StarCraftII), "
    "copy the SMAC maps into $SC2PATH/Maps/SMAC_Maps, and set SC2PATH if the game is elsewhere"
)
NOOP = 0  # StarCraft2Env's no-op: available to, and only to, dead agents

# A factory with StarCraft2Env's constructor: (map_name=..., seed=..., continuing_episode=...) -> env.
Backend = Callable[..., Any]


def default_sc2_path() -> Path:
    """Where pysc2 looks for the game: $SC2PATH, else the platform's default install location."""
    if os.environ.get("SC2PATH"):
        return Path(os.environ["SC2PATH"]).expanduser()
    if sys.platform == "darwin":
        return Path("/Applications/StarCraft II")
    if sys.platform == "win32":
        return Path("C:/Program Files (x86)/StarCraft II")
    return Path("~/StarCraftII").expanduser()


def _real_backend(map_name: str) -> Backend:
    """Import smacv2's StarCraft2Env and check the map and the game exist; one-line error otherwise."""
    try:
        from smacv2.env import StarCraft2Env
        from smacv2.env.starcraft2.maps import smac_maps
    except ImportError as e:
        raise LogoError(
            f"smacv2:{map_name}: the smacv2 package is not importable ({e}); {INSTALL_HINT}"
        ) from None
    registry = smac_maps.get_smac_map_registry()
    fixed = sorted(k for k, v in registry.items() if not str(v.get("map_type", "")).endswith("_gen"))
    if map_name not in fixed:
        raise LogoError(f"smacv2:{map_name}: not a fixed-team SMAC map; choose one of {', '.join(fixed)}")
    root = default_sc2_path()
    if not root.is_dir():
        raise LogoError(f"smacv2:{map_name}: StarCraft II not found at {root}; {INSTALL_HINT}")
    map_file = root / "Maps" / "SMAC_Maps" / f"{registry[map_name]['map_name']}.SC2Map"
    if not map_file.is_file():
        raise LogoError(f"smacv2:{map_name}: map file {map_file} is missing; {INSTALL_HINT}")
    return StarCraft2Env


class SMACv2Env:
    """`num_envs` StarCraft2Env battles on one SMAC map; `backend` replaces StarCraft2Env (tests)."""

    def __init__(self, map_name: str, num_envs: int = 1, backend: Backend | None = None):
        if num_envs < 1:
            raise LogoError(f"num_envs: must be at least 1, got {num_envs}")
        self._factory = backend if backend is not None else _real_backend(map_name)
        self.map_name = map_name
        self.num_envs = num_envs
        # get_env_info needs no running game, so the dims come from an instance that never launches.
        probe = self._make(seed=None)
        info = probe.get_env_info()
        probe.close()
        self.spec = EnvSpec(
            name=f"smacv2:{map_name}",
            n_agents=int(info["n_agents"]),
            obs_dim=int(info["obs_shape"]),
            state_dim=int(info["state_shape"]),
            n_actions=int(info["n_actions"]),
            discrete=True,
            episode_limit=int(info["episode_limit"]),
            noop_action=NOOP,
        )
        self._envs: list[Any] = []

    def _make(self, seed: int | None) -> Any:
        return self._factory(map_name=self.map_name, seed=seed, continuing_episode=True)

    def _observe(self, env: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.spec.n_agents
        obs = np.asarray(env.get_obs(), dtype=np.float32).reshape(n, self.spec.obs_dim)
        state = np.asarray(env.get_state(), dtype=np.float32).reshape(self.spec.state_dim)
        # Per agent, because smacv2 versions disagree on what get_avail_actions() returns.
        avail = np.array([env.get_avail_agent_actions(i) for i in range(n)], dtype=bool)
        return obs, state, avail

    def _batch(self, per_env: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> EnvObs:
        return EnvObs(
            obs=np.stack([p[0] for p in per_env]),
            state=np.stack([p[1] for p in per_env]),
            avail_actions=np.stack([p[2] for p in per_env]),
        )

    def reset(self, seed: int) -> EnvObs:
        # SC2 takes its random seed when the game is launched, so every reset(seed) starts fresh game
        # processes: the same seed then replays the same episodes, whatever ran before.
        self.close()
        seeds = np.random.SeedSequence(seed).generate_state(self.num_envs)
        self._envs = [self._make(seed=int(s)) for s in seeds]
        for env in self._envs:
            env.reset()
        return self._batch([self._observe(env) for env in self._envs])

    def step(self, actions: np.ndarray) -> EnvStep:
        if not self._envs:
            raise LogoError(f"{self.spec.name}: step() called before reset()")
        actions = np.asarray(actions)
        want = (self.num_envs, self.spec.n_agents)
        if actions.shape != want or not np.issubdtype(actions.dtype, np.integer):
            raise LogoError(
                f"{self.spec.name}: actions must be integers of shape {want}, got {actions.shape}"
            )
        B = self.num_envs
        reward = np.zeros(B, dtype=np.float32)
        terminated = np.zeros(B, dtype=bool)
        truncated = np.zeros(B, dtype=bool)
        won = np.zeros(B, dtype=bool)
        nxt, rst = [], []
        for b, env in enumerate(self._envs):
            r, done, info = env.step([int(a) for a in actions[b]])
            reward[b] = r
            truncated[b] = bool(done) and bool(info.get("episode_limit", False))
            terminated[b] = bool(done) and not truncated[b]
            won[b] = terminated[b] and bool(info.get("battle_won", False))
            cur = self._observe(env)
            nxt.append(cur)
            if done:
                env.reset()
                cur = self._observe(env)
            rst.append(cur)
        return EnvStep(
            next=self._batch(nxt),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            won=won,
            reset=self._batch(rst),
        )

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs = []
