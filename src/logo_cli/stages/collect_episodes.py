"""Play whole episodes of a team policy in a batched simulator and hand them over in canonical rows.

Used by `logo collect` (the dataset) and by behaviour training (each snapshot's evaluation).

The episodes are played by stages/episode_runner.py, whose unbiased episode counts keep short
episodes (quick losses or quick wins) from being over-represented in the dataset.

Rows follow docs/data.md: row t holds s_t, o_t, avail_t (before acting), the action executed and
r_t; row l holds the final state/obs/avail (the terminal observation, never the next episode's
start) with reward 0 and a dummy action. The dummy action is the env's no-op (SMAX: stop), which is
always available, so a reader that checks every filled row still sees a legal action; continuous envs
(MaMuJoCo) store the zero vector there, as the OMIGA converter does, and no avail_actions at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from logo_cli.data.layout import EpisodeArrays
from logo_cli.envs.base import EnvObs, MultiAgentEnv
from logo_cli.errors import LogoError
from logo_cli.policies.base import TeamPolicy
from logo_cli.stages.episode_runner import play


@dataclass
class FinishedEpisodes:
    episodes: EpisodeArrays  # E episodes, padded to episode_limit + 1 rows
    returns: np.ndarray  # [E] float64 undiscounted team return
    won: np.ndarray  # [E] bool
    lengths: np.ndarray  # [E] int64 steps


def check_policy_actions(
    actions: np.ndarray, avail: np.ndarray, avail_from: str = "the simulator marks"
) -> np.ndarray:
    """The TeamPolicy contract: [B,N] ints naming an available action; a breach is refused.
    `avail_from` says who made `avail` ("the model predicts" in world-model rollouts)."""
    actions = np.asarray(actions)
    if actions.shape != avail.shape[:2] or not np.issubdtype(actions.dtype, np.integer):
        raise LogoError(f"policy: returned actions {actions.dtype}{list(actions.shape)}, expected int [B,N]")
    n_actions = avail.shape[2]
    if actions.min(initial=0) < 0 or actions.max(initial=0) >= n_actions:
        raise LogoError(f"policy: returned an action outside 0..{n_actions - 1}")
    if not np.take_along_axis(avail, actions[..., None], axis=-1).all():
        raise LogoError(f"policy: picked an action {avail_from} unavailable")
    return actions.astype(np.int64, copy=False)


def check_continuous_actions(actions: np.ndarray, batch: int, n_agents: int, action_dim: int) -> np.ndarray:
    """The continuous contract: [B,N,Ad] finite floats in [-1, 1]; a breach is refused, never written.

    Out-of-range values are refused rather than clipped: the simulator would clip them, so the
    dataset would record an action other than the one executed."""
    actions = np.asarray(actions)
    want = (batch, n_agents, action_dim)
    if actions.shape != want or not np.issubdtype(actions.dtype, np.floating):
        got = f"{actions.dtype}{list(actions.shape)}"
        raise LogoError(f"policy: returned actions {got}, expected float {list(want)}")
    if not np.isfinite(actions).all():
        raise LogoError("policy: returned NaN or inf actions")
    if np.abs(actions).max(initial=0.0) > 1.0:
        raise LogoError("policy: returned an action outside [-1, 1]")
    return actions.astype(np.float32, copy=False)


def record_episodes(
    env: MultiAgentEnv,
    policy: TeamPolicy,
    n_episodes: int,
    seed: int,
    *,
    greedy: bool,
    rng: np.random.Generator,
) -> Iterator[FinishedEpisodes]:
    """Yield the episodes that finished at each step until `n_episodes` are recorded."""
    spec = env.spec
    if spec.discrete and spec.noop_action is None:
        raise LogoError(f"{spec.name}: a discrete env without a no-op action cannot be recorded")
    B, L = env.num_envs, spec.episode_limit + 1
    N, Od, S, A = spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions
    state = np.zeros((B, L, S), np.float32)
    obs = np.zeros((B, L, N, Od), np.float32)
    # continuous envs report one always-true avail entry per agent; it is not stored (docs/data.md)
    avail = np.zeros((B, L, N, A if spec.discrete else 1), bool)
    actions = np.zeros((B, L, N), np.int64) if spec.discrete else np.zeros((B, L, N, A), np.float32)
    reward = np.zeros((B, L), np.float32)
    t = np.zeros(B, np.int64)
    envs = np.arange(B)

    def check(raw: np.ndarray, acted_on: EnvObs) -> np.ndarray:
        # a step past the episode limit would write beyond the rows: refused before it is taken
        if (t >= L - 1).any():
            raise LogoError(f"{spec.name}: an episode ran past the episode limit {spec.episode_limit}")
        if spec.discrete:
            return check_policy_actions(raw, acted_on.avail_actions)
        return check_continuous_actions(raw, B, N, A)

    for played in play(env, policy, n_episodes, seed, greedy=greedy, rng=rng, check_actions=check):
        cur, act, step = played.acted_on, played.actions, played.result
        state[envs, t], obs[envs, t], avail[envs, t], actions[envs, t] = (
            cur.state, cur.obs, cur.avail_actions, act
        )  # fmt: skip
        reward[envs, t] = step.reward
        t += 1
        if played.counted.size:
            yield _finish(
                played.counted, t[played.counted], state, obs, avail, actions, reward, step, spec.noop_action
            )
        t[np.nonzero(step.done)[0]] = 0


def _finish(b, length, state, obs, avail, actions, reward, step, noop: int | None) -> FinishedEpisodes:
    """The recorded episodes of envs `b`; `noop` None means continuous actions ([B,L,N,Ad] floats)."""
    discrete = noop is not None
    E, L = len(b), state.shape[1]
    rows = np.arange(L)[None, :]
    filled = rows <= length[:, None]  # rows 0..l
    stepped = rows < length[:, None]  # rows 0..l-1 carry an action and a reward
    e = np.arange(E)
    # Copies with stale rows of earlier, longer episodes zeroed, then the final row written in.
    st, ob, av = (
        state[b] * filled[..., None],
        obs[b] * filled[..., None, None],
        avail[b] & filled[..., None, None],
    )
    st[e, length], ob[e, length], av[e, length] = (
        step.next.state[b],
        step.next.obs[b],
        step.next.avail_actions[b],
    )
    step_mask = stepped[..., None] if discrete else stepped[..., None, None]
    act = np.where(step_mask, actions[b], 0).astype(actions.dtype)
    act[e, length] = noop if discrete else 0.0
    rew = np.where(stepped, reward[b], 0.0).astype(np.float32)
    term = np.zeros((E, L), np.uint8)
    term[e, length - 1] = step.terminated[b]
    episodes = EpisodeArrays(
        state=st,
        obs=ob,
        actions=act[..., None] if discrete else act,
        avail_actions=av.astype(np.int32) if discrete else None,
        probs=None,
        reward=rew[..., None],
        terminated=term[..., None],
        filled=filled.astype(np.int64)[..., None],
    )
    return FinishedEpisodes(
        episodes=episodes,
        returns=rew.sum(axis=1, dtype=np.float64),
        won=step.won[b].astype(bool),
        lengths=length.astype(np.int64),
    )
