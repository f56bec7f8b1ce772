"""Model branches: a team policy acts on a world model's predictions from dataset start rows, and
the predicted steps come back as transitions (the generator behind `logo rollout` and train-policy's
in-memory rollouts; the stage around it is stages/rollout.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from logo_cli.choices import Termination, values
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.policies.base import TeamPolicy
from logo_cli.stages.collect_episodes import check_continuous_actions, check_policy_actions

Rows = tuple[Transitions, np.ndarray, np.ndarray, np.ndarray]
TERMINATION = values(Termination)


def generate_rollouts(
    model,
    policy: TeamPolicy,
    starts: Transitions,
    horizon: int,
    batch_size: int,
    rng: np.random.Generator,
    device: str = "cpu",
    *,
    sample: bool = False,
    greedy: bool = False,
    branch_offset: int = 0,
    termination: str = "sample",
    reward_range: tuple[float, float] | None = None,
) -> Iterator[Rows]:
    """Yield (transitions, uncertainty [B], step [B] int16, branch [B] int64), one model step at a time.

    One branch per row of `starts` (its state, obs and avail_actions are the branch's first step);
    branch ids are `branch_offset + row`. Up to `batch_size` branches advance together. `sample`
    draws next steps from the model's predictive distribution instead of its mean; `greedy` makes the
    policy take its best action instead of sampling. `termination` "sample" ends a branch with the
    predicted probability, "threshold" when it exceeds 0.5. `reward_range` (lo, hi) clips rewards.
    The same rng state gives the same rollouts.
    """
    import torch

    if horizon < 1 or batch_size < 1:
        raise LogoError("rollout: horizon and batch size must be at least 1")
    dims = starts.dims
    if termination not in TERMINATION:
        raise LogoError(f"--termination {termination}: expected one of {', '.join(TERMINATION)}")
    n_starts = len(starts)
    gen = None
    # A model that is random in itself (the simulator as an oracle) draws from the rollout's seed
    # even when not sampling, so a seeded rollout is repeatable.
    if sample or getattr(model, "stochastic", False):
        gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))

    def take(lo: int, hi: int) -> dict[str, np.ndarray]:
        return {
            "state": starts.state[lo:hi].astype(np.float32),
            "obs": starts.obs[lo:hi].astype(np.float32),
            "avail": starts.avail_actions[lo:hi].astype(bool),
            "step": np.zeros(hi - lo, np.int16),
            "branch": np.arange(lo, hi, dtype=np.int64) + branch_offset,
        }

    nxt = min(batch_size, n_starts)
    pool = take(0, nxt)
    while len(pool["step"]):
        raw = policy.act(pool["obs"], pool["state"], pool["avail"], greedy=greedy, rng=rng)
        if dims.discrete:
            actions = check_policy_actions(raw, pool["avail"], "the model predicts")
        else:
            actions = check_continuous_actions(raw, len(pool["step"]), dims.n_agents, dims.n_actions)
        with torch.no_grad():
            pred = model.predict(
                torch.as_tensor(pool["state"], device=device),
                torch.as_tensor(pool["obs"], device=device),
                torch.as_tensor(actions, device=device),
                sample=sample,
                generator=gen,
            )
        next_state = pred.next_state.float().cpu().numpy()
        next_obs = pred.next_obs.float().cpu().numpy()
        next_avail = pred.next_avail.bool().cpu().numpy()
        p_end = pred.terminated_prob.float().cpu().numpy()
        if termination == "sample":
            terminated = rng.random(len(p_end)) < p_end
        else:
            terminated = p_end > 0.5
        reward = pred.reward.float().cpu().numpy()
        if reward_range is not None:
            reward = np.clip(reward, reward_range[0], reward_range[1])
        rows = Transitions(
            state=pool["state"],
            obs=pool["obs"],
            actions=actions,
            avail_actions=pool["avail"],
            reward=reward,
            terminated=terminated,
            next_state=next_state,
            next_obs=next_obs,
            next_avail_actions=next_avail,
        )
        yield rows, pred.uncertainty.float().cpu().numpy(), pool["step"], pool["branch"]

        # Survivors carry the prediction forward (predicted avail feeds the next policy step);
        # ended branches are replaced by fresh starts.
        step = pool["step"] + 1
        keep = ~terminated & (step < horizon)
        pool = {
            "state": next_state[keep],
            "obs": next_obs[keep],
            "avail": next_avail[keep],
            "step": step[keep].astype(np.int16),
            "branch": pool["branch"][keep],
        }
        refill = min(batch_size - len(pool["step"]), n_starts - nxt)
        if refill > 0:
            new = take(nxt, nxt + refill)
            pool = {k: np.concatenate([pool[k], new[k]]) for k in pool}
            nxt += refill
