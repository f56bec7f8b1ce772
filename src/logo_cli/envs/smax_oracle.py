"""SMAX as a world model: rebuild JaxMARL's env state from a dataset row and step it.

A dataset row holds the world state (per unit: health fraction, position, weapon cooldown and the
unit-type one-hot, zeros for a dead unit; then every unit's team and type) and each ally's
observation. From these the env state is rebuilt exactly:
  health = fraction x the type's full health (rounded: hit points are whole numbers),
  alive = health > 0, positions and cooldowns as given;
  the previous attack of every enemy an ally can see is read from that ally's observation (feature
  "last_targeted" of the enemy's block), which is all the heuristic enemy's own memory needs.
What no row holds is the heuristic enemy's default target: the point, mirrored through the map's
centre, where the enemy stood at its first step. A row whose units all have full health, no
cooldown and no previous action is an episode's first step, and the enemy's fresh memory then
reproduces the env exactly; at any other row the mirror of the enemy team's nominal start is used
(off by the start's uniform noise of at most 2 map units per axis). The step counter does not enter
the dynamics (only the time limit), so it is left at 0: the world model predicts ends by defeat or
victory, and the time limit is the rollout horizon's business, as with every learned model.

Everything runs in one jitted, vmapped function per scenario over chunks of a fixed number of rows
(the last one padded): a rollout's batch shrinks as branches end, and each new batch size would
otherwise cost a compilation of seconds, against milliseconds for stepping a chunk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from logo_cli.errors import LogoError

_STEPPERS: dict[str, SmaxStepper] = {}  # scenario -> stepper (one compiled env per process)
CHUNK = 1024  # rows per compiled call: one compilation per process, ~30 ms a call on one core


def smax_stepper(scenario: str) -> SmaxStepper:
    """The (cached) stepper of one SMAX scenario."""
    if scenario not in _STEPPERS:
        _STEPPERS[scenario] = SmaxStepper(scenario)
    return _STEPPERS[scenario]


class SmaxStepper:
    """`step(state, obs, actions, seed)` for a batch of dataset rows of one SMAX scenario."""

    def __init__(self, scenario: str):
        from logo_cli.envs.smax import _import_jaxmarl

        jax, jaxmarl, map_name_to_scenario = _import_jaxmarl()
        try:
            scen = map_name_to_scenario(scenario)
        except KeyError:
            raise LogoError(f"smax:{scenario}: unknown SMAX scenario") from None
        if bool(scen.smacv2_position_generation) or bool(scen.smacv2_unit_type_generation):
            raise LogoError(
                f"smax:{scenario}: start positions or unit types are drawn per episode (SMACv2-style); "
                "the heuristic enemy's memory cannot be rebuilt from a row, so no oracle model"
            )
        self._jax = jax
        _persistent_compile_cache(jax)
        self.env = jaxmarl.make("HeuristicEnemySMAX", scenario=scen)
        self.scenario = scenario
        self.n_allies = int(self.env.num_allies)
        self.n_enemies = int(self.env.num_enemies)
        inner = self.env._env
        self.n_units = self.n_allies + self.n_enemies
        self.unit_feats = len(inner.own_features)  # world-state features per unit
        self.obs_feats = len(inner.unit_features)  # features per other unit in an observation
        self.state_dim = self.n_units * (self.unit_feats + 2)
        self.obs_dim = int(inner.obs_size)
        self.n_actions = int(inner.num_ally_actions)
        self._fn: Any = None

    def check_dims(self, n_agents: int, obs_dim: int, state_dim: int, n_actions: int, source: str) -> None:
        want = (self.n_allies, self.obs_dim, self.state_dim, self.n_actions)
        if (n_agents, obs_dim, state_dim, n_actions) != want:
            raise LogoError(
                f"{source}: agents/obs/state/actions {n_agents}/{obs_dim}/{state_dim}/{n_actions} do not "
                f"match smax:{self.scenario} ({'/'.join(map(str, want))})"
            )

    def step(
        self, state: np.ndarray, obs: np.ndarray, actions: np.ndarray, seed: int
    ) -> dict[str, np.ndarray]:
        """One env step for each row: next_state [B,S], next_obs [B,N,O], next_avail [B,N,A] bool,
        reward [B], terminated [B] bool. Enemy moves are drawn with keys from `seed`."""
        jax = self._jax
        if self._fn is None:
            self._fn = jax.jit(jax.vmap(self._step_one))
        b = state.shape[0]
        n_chunks = max(1, -(-b // CHUNK))
        inputs = [np.asarray(state, np.float32), np.asarray(obs, np.float32), np.asarray(actions, np.int32)]
        inputs = [_pad(a, n_chunks * CHUNK) for a in inputs]
        keys = jax.random.split(jax.random.PRNGKey(int(seed) % (2**31)), n_chunks * CHUNK)
        parts = []
        for c in range(n_chunks):
            rows = slice(c * CHUNK, (c + 1) * CHUNK)
            parts.append(jax.device_get(self._fn(keys[rows], *(a[rows] for a in inputs))))
        ns, no, av, rew, term = (np.concatenate(x)[:b] for x in zip(*parts, strict=True))
        return {
            "next_state": ns.astype(np.float32),
            "next_obs": no.astype(np.float32),
            "next_avail": av.astype(bool),
            "reward": rew.astype(np.float32),
            "terminated": term.astype(bool),
        }

    # ---- traced code -----------------------------------------------------------------------------
    def rebuild(self, world_state, obs):
        """The env's State (jaxmarl HeuristicEnemySMAX) that a row's world state and obs describe."""
        jnp = self._jax.numpy
        inner = self.env._env
        from jaxmarl.environments.smax.heuristic_enemy import HeuristicPolicyState
        from jaxmarl.environments.smax.heuristic_enemy_smax_env import State as EnemyState
        from jaxmarl.environments.smax.smax_env import State

        n, f, na, ne = self.n_units, self.unit_feats, self.n_allies, self.n_enemies
        feats = world_state[: n * f].reshape(n, f)
        teams = world_state[n * f : n * f + n]
        types = jnp.round(world_state[n * f + n : n * f + 2 * n]).astype(jnp.uint8)
        # Every attack and every full health is a whole number of hit points, so health is too:
        # rounding undoes the fraction's float error (0.6 x 45 = 27.000002 would survive 3 hits of 9).
        health = jnp.round(feats[:, 0] * inner.unit_type_health[types])
        alive = feats[:, 0] > 0
        prev_enemy_attack = self._enemy_prev_attacks(obs)
        prev_attack = jnp.concatenate([jnp.zeros(na, jnp.int32), prev_enemy_attack])
        smax_state = State(
            unit_positions=feats[:, 1:3],
            unit_alive=alive,
            unit_teams=teams,
            unit_health=health,
            unit_types=types,
            unit_weapon_cooldowns=feats[:, 3],
            prev_movement_actions=jnp.zeros((n, 2)),
            prev_attack_actions=prev_attack,
            step=jnp.array(0),
            done=jnp.array(False),
        )
        # First step of an episode: full health, no cooldown, no previous action anywhere.
        first = (
            jnp.all(jnp.where(alive, feats[:, 0] >= 1.0, True))
            & jnp.all(feats[:, 3] == 0)
            & jnp.all(obs[:, : (n - 1) * self.obs_feats].reshape(na, n - 1, -1)[..., 3:6] == 0)
        )
        nominal = jnp.array([inner.map_width / 4, inner.map_height / 2])
        target = jnp.where(first, jnp.zeros(2), nominal)
        last = jnp.where(prev_enemy_attack >= inner.num_movement_actions,
                         prev_enemy_attack - inner.num_movement_actions, -1)  # fmt: skip
        last = jnp.where(first, -1, last)
        policy_state = HeuristicPolicyState(
            default_target=jnp.broadcast_to(target, (ne, 2)), last_attacked_enemy=last.astype(jnp.int32)
        )
        return EnemyState(state=smax_state, enemy_policy_state=policy_state)

    def _enemy_prev_attacks(self, obs):
        """Each enemy's previous attack action, read from the allies that see it (0 if none does)."""
        jnp = self._jax.numpy
        n, na, ne, u = self.n_units, self.n_allies, self.n_enemies, self.obs_feats
        inner = self.env._env
        blocks = obs[:, : (n - 1) * u].reshape(na, n - 1, u)
        # Ally i's blocks list the other allies first (na - 1 of them), then the enemies in order.
        enemy_blocks = blocks[:, na - 1 :, :]  # [na, ne, u]
        seen = jnp.any(enemy_blocks != 0, axis=-1)  # [na, ne]
        scaled = jnp.round(enemy_blocks[..., 5] * (inner.num_enemy_actions - 1)).astype(jnp.int32)
        return jnp.max(jnp.where(seen, scaled, 0), axis=0).reshape(ne)

    def _step_one(self, key, world_state, obs, actions):
        jax, jnp = self._jax, self._jax.numpy
        env = self.env
        agents = list(env.agents)
        state = self.rebuild(world_state, obs)
        act = {a: actions[i] for i, a in enumerate(agents)}
        nobs, nxt, rewards, _, _ = env.step_env(key, state, act)
        next_obs = jnp.stack([nobs[a] for a in agents])
        avail_d = env.get_avail_actions(nxt)
        avail = jnp.stack([avail_d[a] for a in agents]).astype(bool)
        alive = nxt.state.unit_alive
        terminated = ~jnp.any(alive[: self.n_allies]) | ~jnp.any(alive[self.n_allies :])
        del jax
        return nobs["world_state"], next_obs, avail, rewards[agents[0]], terminated


def _pad(a: np.ndarray, rows: int) -> np.ndarray:
    """`a` with zero rows appended up to `rows` (a zero row is a valid, all-dead unit list)."""
    out = np.zeros((rows, *a.shape[1:]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def _persistent_compile_cache(jax: Any) -> None:
    """Keep compiled steps on disk ($LOGO_JAX_CACHE, default ~/.cache/logo-cli/jax): a training run
    that refreshes its rollouts from the oracle then starts in about 2 s instead of about 10 s of
    compilation. Left alone when the process has already chosen a cache directory."""
    if jax.config.jax_compilation_cache_dir:
        return
    path = os.environ.get("LOGO_JAX_CACHE") or str(Path.home() / ".cache" / "logo-cli" / "jax")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # an unwritable home: compile every time, as without a cache
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
