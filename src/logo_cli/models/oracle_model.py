"""The `oracle` world model: the real simulator behind the world-model interface.

It answers `predict(state, obs, actions)` by rebuilding the simulator's state from the row and
stepping it (envs/smax_oracle.py for SMAX), so its next states, observations, available actions,
rewards and ends are draws from the true dynamics, up to what a row cannot say (documented there).
It measures the ceiling of model-based data: what a learner gains from synthetic rows that carry no
model error. Its uncertainty is zero. It has no weights; its checkpoint holds the normalisers fitted
on the dataset (so that corruption noise and error metrics are in the same standardised units as
every other model's) and the clipping bounds.

Stochastic draws: the enemies' choices and weapon cooldowns are random in the simulator. The key of
each step is drawn from `generator` (the rollout's), or from torch's global RNG without one, so a
seeded rollout is repeatable. `sample` changes nothing: the simulator always samples.
"""

from __future__ import annotations

import torch

from logo_cli.data.transitions import Dims
from logo_cli.models.wm_base import Prediction, WorldModelBase

SIMULATORS = ("smax",)


def parse_simulator(env: str) -> tuple[str, str]:
    """'smax:3m' -> ('smax', '3m'); ValueError for a simulator the oracle cannot rebuild."""
    sim, _, scenario = str(env).partition(":")
    if sim not in SIMULATORS or not scenario:
        raise ValueError(
            f"env {env!r}: the oracle model rebuilds SMAX states only (smax:<map>); a MaMuJoCo row has "
            "no qpos/qvel and SMACv2 needs StarCraft II's own state"
        )
    return sim, scenario


class OracleModel(WorldModelBase):
    kind = "oracle"
    stochastic = True  # rollouts pass a generator even when not sampling (see generate_rollouts)

    def __init__(self, dims: Dims, env: str = "", noop_action: int = 0, clip: bool = False):
        super().__init__(dims, noop_action, clip)
        if not dims.discrete:
            raise ValueError("the oracle model needs discrete actions (SMAX)")
        self.simulator, self.scenario = parse_simulator(env)
        self.env = str(env)
        self.hp = {"env": self.env, "noop_action": self.noop_action, "clip": self.clip}
        self._stepper = None  # built on first use: JAX and the compiled env cost seconds

    def stepper(self):
        if self._stepper is None:
            from logo_cli.envs.smax_oracle import smax_stepper

            stepper = smax_stepper(self.scenario)
            d = self.dims
            stepper.check_dims(d.n_agents, d.obs_dim, d.state_dim, d.n_actions, f"oracle {self.env}")
            self._stepper = stepper
        return self._stepper

    @torch.no_grad()
    def predict(
        self,
        state: torch.Tensor,
        obs: torch.Tensor,
        actions: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> Prediction:
        self.check_actions(actions)
        device = state.device
        where = generator.device if generator is not None else "cpu"
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=where))
        out = self.stepper().step(
            state.float().cpu().numpy(), obs.float().cpu().numpy(), actions.cpu().numpy(), seed
        )
        next_state = torch.as_tensor(out["next_state"], device=device)
        next_obs = torch.as_tensor(out["next_obs"], device=device)
        next_state, next_obs = self.bound(next_state, next_obs)
        return Prediction(
            next_state=next_state,
            next_obs=next_obs,
            reward=torch.as_tensor(out["reward"], device=device),
            terminated_prob=torch.as_tensor(out["terminated"], device=device).float(),
            next_avail=torch.as_tensor(out["next_avail"], device=device),
            uncertainty=torch.zeros(state.shape[0], device=device),
        )
