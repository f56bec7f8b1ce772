"""The one loop that plays a team policy in a batched simulator: `play` yields every step.

Unbiased episode counts: env slot b counts exactly quota[b] episodes (the counts differ by at most
one) and then runs on uncounted. Taking "the first n episodes to finish" instead would over-represent
short episodes (quick losses or quick wins). A policy with memory (policies/recurrent_policy.py) has
an optional `reset(mask)` hook: every slot starts afresh with the first observation, and each slot
again when its episode ends.

What a step is used for is the caller's: stages/evaluate.py sums returns and wins
(`run_episodes`), stages/collect_episodes.py records the rows of a dataset (`record_episodes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from logo_cli.envs.base import EnvObs, EnvStep, MultiAgentEnv
from logo_cli.policies.base import TeamPolicy

# (the policy's raw actions, the observation they answer) -> the actions to step with, or a LogoError
CheckActions = Callable[[np.ndarray, EnvObs], np.ndarray]


@dataclass
class PlayedStep:
    acted_on: EnvObs  # what the policy saw
    actions: np.ndarray  # what the envs were stepped with (after check_actions)
    result: EnvStep
    counted: np.ndarray  # env slots whose episode ended at this step and counts towards their quota


def episode_quota(n_episodes: int, num_envs: int) -> np.ndarray:
    """Episodes each env slot counts: n_episodes spread over the slots, the first ones taking one more."""
    quota = np.full(num_envs, n_episodes // num_envs, dtype=np.int64)
    quota[: n_episodes % num_envs] += 1
    return quota


def play(
    env: MultiAgentEnv,
    policy: TeamPolicy,
    n_episodes: int,
    seed: int,
    *,
    greedy: bool,
    rng: np.random.Generator,
    check_actions: CheckActions,
) -> Iterator[PlayedStep]:
    """Step every env slot with the policy's actions until each has counted its quota of episodes."""
    quota = episode_quota(n_episodes, env.num_envs)
    current = env.reset(seed)
    reset = getattr(policy, "reset", None)
    if reset is not None:
        reset(np.ones(env.num_envs, dtype=bool))
    while (quota > 0).any():
        raw = policy.act(current.obs, current.state, current.avail_actions, greedy=greedy, rng=rng)
        actions = check_actions(raw, current)
        result = env.step(actions)
        done = result.done
        ended = np.nonzero(done)[0]
        counted = ended[quota[ended] > 0]
        quota[counted] -= 1
        yield PlayedStep(current, actions, result, counted)
        if reset is not None and done.any():
            reset(done)
        current = result.reset
