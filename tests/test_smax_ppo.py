"""Online MAPPO: GAE bootstrapping rules, real learning on a tiny problem, seeded determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logo_cli.algos.online_ppo import PPOConfig, PPOTrainer, Rollout, gae
from logo_cli.envs.base import EnvObs, EnvSpec, EnvStep


class MatchingEnv:
    """One-step episodes: each agent sees a one-hot target and is paid for choosing it.

    Action 3 is unavailable to every agent, so a learner must also respect the mask. The optimum
    is a team reward of 1.0; a uniform policy over the 3 available actions earns 1/3.
    """

    def __init__(self, num_envs: int = 16, n_agents: int = 2, n_actions: int = 4):
        self.num_envs, self.n, self.a = num_envs, n_agents, n_actions
        self.spec = EnvSpec("fake:match", n_agents, n_actions, n_actions, n_actions, True, 1, 0)
        self.rng = np.random.default_rng(0)

    def _obs(self) -> EnvObs:
        self.target = self.rng.integers(0, self.a - 1, size=(self.num_envs, self.n))
        obs = np.eye(self.a, dtype=np.float32)[self.target]
        avail = np.ones((self.num_envs, self.n, self.a), bool)
        avail[..., self.a - 1] = False
        return EnvObs(obs, obs.reshape(self.num_envs, -1)[:, : self.a].copy(), avail)

    def reset(self, seed: int) -> EnvObs:
        self.rng = np.random.default_rng(seed)
        return self._obs()

    def step(self, actions: np.ndarray) -> EnvStep:
        assert (actions != self.a - 1).all(), "an unavailable action was taken"
        reward = (actions == self.target).mean(axis=1).astype(np.float32)
        done = np.ones(self.num_envs, bool)
        final = EnvObs(
            np.zeros((self.num_envs, self.n, self.a), np.float32),
            np.zeros((self.num_envs, self.a), np.float32),
            np.ones((self.num_envs, self.n, self.a), bool),
        )
        return EnvStep(final, reward, done, ~done, reward == 1.0, self._obs())

    def close(self) -> None:
        pass


def _rollout(reward, value, next_value, terminated, done) -> Rollout:
    t = lambda x, dt=torch.float32: torch.tensor(x, dtype=dt)[:, None]  # noqa: E731
    z = torch.zeros(len(reward), 1)
    return Rollout(
        z, z, z, z, z, t(value), t(next_value), t(reward), t(terminated, torch.bool), t(done, torch.bool)
    )


def test_gae_bootstraps_time_outs_but_not_real_ends():
    g, lam = 0.9, 0.5
    # step 0 goes on, step 1 is a time-out (bootstrap V(final)=2), step 2 a real end (no bootstrap)
    ro = _rollout([1.0, 0.0, 1.0], [0.5, 1.0, 0.2], [1.0, 2.0, 7.0], [0, 0, 1], [0, 1, 1])
    adv, target = gae(ro, g, lam)
    d2 = 1.0 - 0.2
    d1 = 0.0 + g * 2.0 - 1.0
    d0 = 1.0 + g * 1.0 - 0.5
    expected = [d0 + g * lam * d1, d1, d2]  # the time-out at step 1 stops the GAE trace too
    np.testing.assert_allclose(adv[:, 0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(target[:, 0].numpy(), np.array(expected) + [0.5, 1.0, 0.2], rtol=1e-6)


def test_ppo_learns_a_masked_matching_task():
    cfg = PPOConfig(num_envs=32, rollout_len=8, lr=3e-3, epochs=4, minibatches=2, hidden=32, layers=1)
    trainer = PPOTrainer(MatchingEnv(32), cfg, seed=0, total_updates=40)
    first = trainer.iterate()["train_return"]
    for _ in range(39):
        last = trainer.iterate()
    assert first < 0.5  # about 1/3 by chance
    assert last["train_return"] > 0.9, last
    assert trainer.env_steps == 40 * 32 * 8


def test_ppo_updates_are_seeded_and_change_the_actor():
    pytest.importorskip("jaxmarl")
    from logo_cli.envs.smax import SmaxEnv

    cfg = PPOConfig(num_envs=8, rollout_len=16, hidden=32, layers=1, epochs=2, minibatches=2)

    def run(seed: int) -> tuple[dict, dict]:
        trainer = PPOTrainer(SmaxEnv("3m", num_envs=8), cfg, seed=seed, total_updates=2)
        before = {k: v.clone() for k, v in trainer.actor.state_dict().items()}
        trainer.iterate()
        trainer.iterate()
        return before, trainer.actor.state_dict()

    b0, a0 = run(1)
    _, a1 = run(1)
    _, a2 = run(2)
    for k in a0:
        torch.testing.assert_close(a0[k], a1[k], rtol=0, atol=0)
    assert any(not torch.equal(a0[k], b0[k]) for k in a0)
    assert any(not torch.equal(a0[k], a2[k]) for k in a0)
