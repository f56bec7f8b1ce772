"""SMAX (JaxMARL's JAX re-implementation of SMAC) behind the batched MultiAgentEnv protocol.

Enemies play JaxMARL's built-in heuristic ("HeuristicEnemySMAX"). One jitted function, vmapped
over the envs, does the whole step: the env step (`step_env`, which does not auto-reset), the
win / real-end / time-out flags, a fresh episode for every env that ended (chosen with
`jnp.where`, so the terminal observation survives in `EnvStep.next`), the available actions and
the key split. Python synchronises once per step, when the outputs come back as numpy.

Actions per agent: 0-3 move, 4 stop (the only action of a dead agent, hence `noop_action`),
5.. attack enemy j. Team reward = normalised enemy health removed, +1 on a win.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from logo_cli.envs.base import EnvObs, EnvSpec, EnvStep
from logo_cli.errors import LogoError

STOP_ACTION = 4  # SMAX has no no-op: "stop" is always available and is what dead agents do
DEFAULT_MAX_STEPS = 100  # JaxMARL's SMAX default
_COMPILED: dict[str, tuple[Any, Any, Any]] = {}  # scenario -> (jaxmarl env, reset_all, step_all)


def _import_jaxmarl() -> tuple[Any, Any, Any]:
    """Import jax and jaxmarl lazily: jaxmarl takes seconds to import and prints to stdout.

    jaxmarl's optional-brax import also sets sys.stdout/sys.stderr back to the process's original
    streams (and then prints to them), which would break any capture in place (a CLI test runner,
    pytest, a `--json` pipe). So the import runs with file descriptor 1 pointed at /dev/null and
    the Python-level streams are restored by hand afterwards.
    """
    saved_out, saved_err = sys.stdout, sys.stderr
    with _fd1_to_devnull():
        try:
            sys.stdout = io.StringIO()
            import jax
            import jaxmarl
            from jaxmarl.environments.smax import map_name_to_scenario
        except ImportError as e:
            raise LogoError(f"smax: jaxmarl is not installed ({e}); pip install 'logo-cli[smax]'") from None
        finally:
            sys.stdout, sys.stderr = saved_out, saved_err
    return jax, jaxmarl, map_name_to_scenario


@contextlib.contextmanager
def _fd1_to_devnull() -> Iterator[None]:
    real = sys.__stdout__
    try:
        fd = real.fileno() if real is not None else -1
    except (OSError, ValueError):  # no real stdout (a GUI, a closed pipe): nothing to silence
        fd = -1
    if fd < 0:
        yield
        return
    real.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        real.flush()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def smax_scenarios() -> list[str]:
    """The scenario names JaxMARL knows (3m, 2s3z, 5m_vs_6m, ...)."""
    _import_jaxmarl()
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    return sorted(MAP_NAME_TO_SCENARIO)


class SmaxEnv:
    """`num_envs` copies of one SMAX scenario against the heuristic enemy; numpy in, numpy out."""

    def __init__(self, scenario: str, num_envs: int = 1, max_steps: int | None = None):
        if num_envs < 1:
            raise LogoError(f"--num-envs {num_envs}: must be at least 1")
        max_steps = DEFAULT_MAX_STEPS if max_steps is None else int(max_steps)
        if max_steps < 1:
            raise LogoError(f"smax max_steps {max_steps}: must be at least 1")
        jax, jaxmarl, map_name_to_scenario = _import_jaxmarl()
        try:
            scen = map_name_to_scenario(scenario)
        except KeyError:
            raise LogoError(
                f"smax:{scenario}: unknown SMAX scenario (known: {', '.join(smax_scenarios())})"
            ) from None
        self._jax = jax
        if scenario not in _COMPILED:
            # One jaxmarl env and one pair of jitted functions per scenario and process: every
            # SmaxEnv of that scenario (and batch size) reuses the compiled code.
            jm_env = jaxmarl.make("HeuristicEnemySMAX", scenario=scen)
            _COMPILED[scenario] = (jm_env, *_build_fns(jax, jm_env, list(jm_env.agents), jm_env.num_allies))
        self._env, self._reset_all, self._step_all = _COMPILED[scenario]
        self.num_envs = int(num_envs)
        self.scenario = scenario
        self._max_steps = jax.numpy.asarray(max_steps, dtype=jax.numpy.int32)
        n = self._env.num_allies
        agents = list(self._env.agents)
        obs_dim = int(self._env.observation_spaces[agents[0]].shape[0])
        n_actions = int(self._env.action_spaces[agents[0]].n)
        # Warm up: compile reset and step once now, so no compile happens in the middle of a run.
        keys = jax.random.split(jax.random.PRNGKey(0), self.num_envs)
        self._keys, self._state, first = self._reset_all(keys)
        state_dim = int(first[1].shape[-1])
        stop = np.full((self.num_envs, n), STOP_ACTION, dtype=np.int32)
        jax.block_until_ready(self._step_all(self._keys, self._state, stop, self._max_steps))
        self.spec = EnvSpec(
            name=f"smax:{scenario}",
            n_agents=n,
            obs_dim=obs_dim,
            state_dim=state_dim,
            n_actions=n_actions,
            discrete=True,
            episode_limit=max_steps,
            noop_action=STOP_ACTION,
        )
        self._started = False

    def reset(self, seed: int) -> EnvObs:
        """Start every env; env b's episodes depend only on (seed, b) and the actions taken."""
        jax = self._jax
        keys = jax.random.split(jax.random.PRNGKey(int(seed)), self.num_envs)
        self._keys, self._state, first = self._reset_all(keys)
        self._started = True
        obs, state, avail = jax.device_get(first)
        return _env_obs(obs, state, avail)

    def step(self, actions: np.ndarray) -> EnvStep:
        if not self._started:
            raise LogoError("smax: step() called before reset(seed)")
        actions = np.asarray(actions)
        expected = (self.num_envs, self.spec.n_agents)
        if actions.shape != expected:
            raise LogoError(f"smax: actions of shape {actions.shape}, expected {expected}")
        self._keys, self._state, out = self._step_all(
            self._keys, self._state, actions.astype(np.int32), self._max_steps
        )
        # One device-to-host transfer per step.
        o, s, av, rew, term, trunc, won, ro, rs, rav = self._jax.device_get(out)
        return EnvStep(
            next=_env_obs(o, s, av),
            reward=np.array(rew, dtype=np.float32),
            terminated=np.array(term, dtype=bool),
            truncated=np.array(trunc, dtype=bool),
            won=np.array(won, dtype=bool),
            reset=_env_obs(ro, rs, rav),
        )

    def save_state(self) -> list[np.ndarray]:
        """The simulators' full state (the envs' random keys and jaxmarl states) as arrays, so a
        resumed run steps on exactly as the interrupted one would have."""
        if not self._started:
            raise LogoError("smax: save_state() called before reset(seed)")
        leaves = self._jax.tree_util.tree_leaves((self._keys, self._state))
        return [np.array(x) for x in self._jax.device_get(leaves)]

    def load_state(self, arrays: list[np.ndarray]) -> None:
        """Restore what save_state() returned, after checking every array against this env's."""
        jax = self._jax
        leaves, treedef = jax.tree_util.tree_flatten((self._keys, self._state))
        if len(arrays) != len(leaves):
            raise LogoError(f"smax: a saved state of {len(arrays)} arrays, this env has {len(leaves)}")
        for i, (saved, now) in enumerate(zip(arrays, leaves, strict=True)):
            saved = np.asarray(saved)
            if saved.shape != tuple(now.shape) or saved.dtype != now.dtype:
                raise LogoError(
                    f"smax: saved state array {i} is {saved.dtype}{list(saved.shape)}, "
                    f"this env's is {now.dtype}{list(now.shape)} (another scenario or --num-envs?)"
                )
        self._keys, self._state = jax.tree_util.tree_unflatten(
            treedef, [jax.numpy.asarray(a) for a in arrays]
        )
        self._started = True

    def close(self) -> None:
        self._state = None
        self._started = False


def _env_obs(obs: np.ndarray, state: np.ndarray, avail: np.ndarray) -> EnvObs:
    # Copies: arrays that come back from jax are read-only, and callers may write into theirs.
    return EnvObs(
        obs=np.array(obs, dtype=np.float32),
        state=np.array(state, dtype=np.float32),
        avail_actions=np.array(avail, dtype=bool),
    )


def _build_fns(jax: Any, env: Any, agents: list[str], n_allies: int):
    """The jitted, vmapped reset and fused step over a batch of per-env keys and states."""
    jnp = jax.numpy

    def strong(tree):
        # The env's state leaves change weak-typing across the first steps, and each change would
        # recompile the step; pinning every leaf to a strong dtype keeps one compiled version.
        return jax.tree.map(lambda x: jnp.asarray(x).astype(jnp.asarray(x).dtype), tree)

    def team_view(obs, env_state):
        o = jnp.stack([obs[a] for a in agents])
        avail_d = env.get_avail_actions(env_state)
        avail = jnp.stack([avail_d[a] for a in agents]).astype(bool)
        return o, obs["world_state"], avail

    def reset_one(key):
        key, reset_key = jax.random.split(key)
        obs, env_state = env.reset(reset_key)
        return key, strong(env_state), team_view(obs, env_state)

    def step_one(key, env_state, actions, max_steps):
        key, step_key, reset_key = jax.random.split(key, 3)
        act = {a: actions[i] for i, a in enumerate(agents)}
        obs, nxt, rewards, _, _ = env.step_env(step_key, env_state, act)
        o, s, avail = team_view(obs, nxt)
        alive = nxt.state.unit_alive
        allies_dead = ~jnp.any(alive[:n_allies])
        enemies_dead = ~jnp.any(alive[n_allies:])
        terminated = allies_dead | enemies_dead
        won = enemies_dead & ~allies_dead
        # Our own limit check (a traced value, so any limit reuses the compiled step); SMAX's own
        # `done` uses its fixed max_steps and fires one step after `step` reaches it.
        truncated = (nxt.state.step >= max_steps) & ~terminated
        done = terminated | truncated
        r_obs, r_state = env.reset(reset_key)
        ro, rs, rav = team_view(r_obs, r_state)
        r_state = strong(r_state)
        new_state = jax.tree.map(lambda r, x: jnp.where(done, r, x).astype(r.dtype), r_state, strong(nxt))
        pick = lambda r, x: jnp.where(done, r, x)  # noqa: E731
        out = (o, s, avail, rewards[agents[0]], terminated, truncated, won,
               pick(ro, o), pick(rs, s), pick(rav, avail))  # fmt: skip
        return key, new_state, out

    return jax.jit(jax.vmap(reset_one)), jax.jit(jax.vmap(step_one, in_axes=(0, 0, 0, None)))
