"""Online Gaussian MAPPO on a batched continuous-action simulator (MaMuJoCo): the behaviour policies
of continuous ladders.

The continuous counterpart of algos/online_ppo.py (same MAPPO form: one parameter-shared actor with a
one-hot agent id, one centralised critic V(s) on the global state, one team advantage, per-agent
ratios, time-outs bootstrapped from V(final state), GAE from online_ppo.gae_arrays). The actor is the
network of a mode "gaussian" policy (policies/torch_policy.py, acting as policies/gaussian_policy.py's
GaussianBCPolicy does) and trains through that very policy object, so a snapshot saved with its
observation statistics acts exactly as the trainer did at that point:
- mean = tanh(first Ad outputs), log-std = the last Ad outputs clamped to [-5, 1];
- the sampled action a ~ N(mean, std) is clipped to [-1, 1] before the simulator sees it (no tanh
  squashing of the sample: the Gaussian policy format clips). The PPO log-probability is the one of
  the unclipped sample (the usual "clipped Gaussian" PPO treatment); a dataset records the clipped
  action, the one executed;
- the log-std is state-independent in effect: the weights of its output rows start at zero and get
  no gradient, so only their biases (one per action entry, shared by the agents) learn;
- observations are standardised with running statistics (over agents and steps), frozen during a
  rollout and its update and refreshed after it; the saved policy carries them (obs_norm);
- the critic sees running-standardised states, and rewards are divided by the running standard
  deviation of the discounted return (the critic's scale only: the actor's advantages are
  standardised per minibatch anyway, and returns reported are the simulator's own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from logo_cli.algos.online_ppo import common_state, gae_arrays, load_common_state, ppo_epochs
from logo_cli.data.transitions import Dims
from logo_cli.envs.base import EnvObs, MultiAgentEnv
from logo_cli.models.agent_net import AgentNet, mlp
from logo_cli.policies.gaussian_policy import LOG_STD_MAX, LOG_STD_MIN, GaussianBCPolicy

LOG_2PI = float(np.log(2 * np.pi))
STD_FLOOR = 1e-2  # floor of the running observation / state standard deviation


@dataclass(frozen=True)
class GaussianPPOConfig:
    num_envs: int = 16  # simulator copies stepped together
    rollout_len: int = 256  # steps per env between two updates
    lr: float = 3e-4  # Adam learning rate (actor and critic), annealed linearly to 10% over training
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE lambda
    clip: float = 0.2  # PPO ratio clip
    epochs: int = 10  # passes over each rollout
    minibatches: int = 32  # minibatches per pass (128 env steps, 256 agent-steps each)
    ent_coef: float = 0.0  # entropy bonus weight (MuJoCo PPO usually needs none)
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # gradient clipping (global norm)
    hidden: int = 64  # hidden width of actor and critic
    layers: int = 2  # hidden layers of actor and critic
    init_log_std: float = -0.5  # starting log-std of every action entry


class RunningStats:
    """Running mean and variance over the last axis' features (Chan et al.'s parallel update)."""

    def __init__(self, dim: int):
        self.mean = np.zeros(dim, np.float64)
        self.var = np.ones(dim, np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).reshape(-1, self.mean.shape[0])
        n, m, v = x.shape[0], x.mean(0), x.var(0)
        delta, total = m - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + v * n + delta**2 * self.count * n / total) / total
        self.count = total

    def state_dict(self) -> dict:
        return {
            "mean": torch.from_numpy(self.mean.copy()),
            "var": torch.from_numpy(self.var.copy()),
            "count": self.count,
        }

    def load_state_dict(self, saved: dict) -> None:
        self.mean, self.var = saved["mean"].numpy().copy(), saved["var"].numpy().copy()
        self.count = float(saved["count"])

    def std(self) -> np.ndarray:
        return np.maximum(np.sqrt(self.var), STD_FLOOR)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """log N(action; mean, exp(log_std)) summed over the last axis (diagonal Gaussian)."""
    z = (action - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of the diagonal Gaussian, summed over the last axis."""
    return (log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1)


class GaussianPPOTrainer:
    """Holds the policy (a GaussianBCPolicy), the critic, the optimiser, the running statistics, the
    envs' current observation and the counters."""

    def __init__(self, env: MultiAgentEnv, cfg: GaussianPPOConfig, seed: int, total_updates: int):
        spec = env.spec
        if spec.discrete:
            raise ValueError("Gaussian PPO needs a continuous-action env")
        torch.manual_seed(seed)
        self.env, self.cfg, self.total_updates = env, cfg, max(1, total_updates)
        self.dims = Dims(spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions, spec.discrete)
        ad = spec.n_actions
        self.actor = AgentNet(spec.obs_dim, spec.n_agents, 2 * ad, cfg.hidden, cfg.layers)
        last = self.actor.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight[:ad].mul_(0.01)  # near-zero starting means: actions start centred
            last.bias[:ad].zero_()
            last.weight[ad:].zero_()
            last.bias[ad:].fill_(cfg.init_log_std)
        mask = torch.ones_like(last.weight)
        mask[ad:] = 0.0
        last.weight.register_hook(lambda g: g * mask)  # log-std: state-independent (biases only)
        self.obs_stats = RunningStats(spec.obs_dim)
        self.state_stats = RunningStats(spec.state_dim)
        self.ret_stats = RunningStats(1)
        self.policy = GaussianBCPolicy(self.actor, self.dims, self.obs_stats.mean, self.obs_stats.std())
        self.policy.hparams = {"hidden": cfg.hidden, "layers": cfg.layers}
        self.actor.train()
        self.critic = mlp(spec.state_dim, cfg.hidden, cfg.layers, 1)
        self.params = list(self.actor.parameters()) + list(self.critic.parameters())
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr, eps=1e-5)
        self.gen = torch.Generator().manual_seed(seed)
        self.current: EnvObs = env.reset(seed)
        self.env_steps = 0
        self.updates = 0
        self._ep_return = np.zeros(env.num_envs)
        self._disc_return = np.zeros(env.num_envs)
        self.recent_returns: list[float] = []

    def obs_norm(self) -> tuple[np.ndarray, np.ndarray]:
        """The (mean, std) the policy standardises observations with now (saved with a snapshot)."""
        return self.policy.obs_mean.numpy().copy(), self.policy.obs_std.numpy().copy()

    def _norm_state(self, state: np.ndarray) -> torch.Tensor:
        mean, std = self.state_stats.mean, self.state_stats.std()
        return torch.as_tensor((state - mean) / std, dtype=torch.float32)

    @torch.no_grad()
    def collect(self) -> dict[str, torch.Tensor]:
        T, env = self.cfg.rollout_len, self.env
        B, N, S, Ad = env.num_envs, env.spec.n_agents, env.spec.state_dim, env.spec.n_actions
        obs = np.zeros((T, B, N, env.spec.obs_dim), np.float32)
        state = np.zeros((T, B, S), np.float32)
        next_state = np.zeros_like(state)
        actions = torch.zeros((T, B, N, Ad))
        logp = torch.zeros((T, B, N))
        reward = np.zeros((T, B), np.float32)
        terminated = np.zeros((T, B), bool)
        done = np.zeros((T, B), bool)
        self.recent_returns = []
        for t in range(T):
            cur = self.current
            obs[t], state[t] = cur.obs, cur.state
            mean, log_std = self.policy.distribution(torch.from_numpy(obs[t]))
            noise = torch.randn(mean.shape, generator=self.gen)
            raw = mean + noise * log_std.exp()  # unclipped: the sample the log-probability is of
            step = env.step(raw.clamp(-1.0, 1.0).numpy())
            actions[t], logp[t] = raw, gaussian_log_prob(mean, log_std, raw)
            next_state[t], reward[t], terminated[t], done[t] = (
                step.next.state, step.reward, step.terminated, step.done
            )  # fmt: skip
            self._ep_return += step.reward
            self._disc_return = self._disc_return * self.cfg.gamma + step.reward
            self.ret_stats.update(self._disc_return[:, None])
            for b in np.nonzero(step.done)[0]:
                self.recent_returns.append(float(self._ep_return[b]))
                self._ep_return[b] = 0.0
                self._disc_return[b] = 0.0
            self.current = step.reset
        self.env_steps += T * B
        scale = float(np.sqrt(self.ret_stats.var[0]) + 1e-8)
        state_t, next_t = self._norm_state(state), self._norm_state(next_state)
        return {
            "obs": torch.from_numpy(obs),
            "state": state_t,
            "actions": actions,
            "logp": logp,
            "value": self.critic(state_t).squeeze(-1),
            "next_value": self.critic(next_t).squeeze(-1),
            "reward": torch.from_numpy(reward) / scale,
            "terminated": torch.from_numpy(terminated),
            "done": torch.from_numpy(done),
            "_raw_state": torch.from_numpy(state),
        }

    def update(self, ro: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        frac = 1.0 - self.updates / self.total_updates
        for g in self.opt.param_groups:
            g["lr"] = cfg.lr * max(0.1, frac)
        adv, target = gae_arrays(
            ro["reward"],
            ro["value"],
            ro["next_value"],
            ro["terminated"],
            ro["done"],
            cfg.gamma,
            cfg.gae_lambda,
        )
        n = adv.numel()
        flat = {
            "obs": ro["obs"].flatten(0, 1),
            "state": ro["state"].flatten(0, 1),
            "actions": ro["actions"].flatten(0, 1),
            "logp": ro["logp"].flatten(0, 1),
            "adv": adv.flatten(),
            "target": target.flatten(),
        }
        out = ppo_epochs(flat, n, self.loss, self.opt, self.params, cfg, self.gen)
        self.updates += 1
        # refresh the running statistics for the next rollout (frozen during this one and its update)
        self.obs_stats.update(ro["obs"].numpy())
        self.state_stats.update(ro["_raw_state"].numpy())
        self.policy.obs_mean = torch.as_tensor(self.obs_stats.mean, dtype=torch.float32)
        self.policy.obs_std = torch.as_tensor(self.obs_stats.std(), dtype=torch.float32)
        out["std"] = float(torch.exp(self.actor.net[-1].bias.detach()[self.dims.n_actions :]).mean())
        return out

    def loss(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The clipped PPO objective on a minibatch (obs [M,N,O], actions [M,N,Ad], logp [M,N],
        adv/target/state [M] / [M,S])."""
        cfg = self.cfg
        mean, log_std = self.policy.distribution(b["obs"])
        logp = gaussian_log_prob(mean, log_std, b["actions"])  # [M,N]
        adv = (b["adv"] - b["adv"].mean()) / (b["adv"].std() + 1e-8)
        ratio = torch.exp(logp - b["logp"])
        a = adv.unsqueeze(-1)
        surr = torch.min(ratio * a, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a)
        policy_loss = -surr.mean()
        entropy = gaussian_entropy(log_std).mean()
        value_loss = 0.5 * (self.critic(b["state"]).squeeze(-1) - b["target"]).pow(2).mean()
        loss = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss
        clip_frac = ((ratio - 1).abs() > cfg.clip).float().mean()
        return {
            "loss": loss,
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy.detach(),
            "clip_frac": clip_frac.detach(),
        }

    def iterate(self) -> dict[str, float]:
        """One rollout and one PPO update; returns the losses and the rollout's episode returns."""
        stats = self.update(self.collect())
        if self.recent_returns:
            stats["train_return"] = float(np.mean(self.recent_returns))
        return stats

    def state_dict(self) -> dict:
        """PPOTrainer.state_dict plus the running statistics (observations, states, discounted
        returns) and the discounted returns of the episodes under way."""
        stats = {name: rs.state_dict() for name, rs in self._running_stats().items()}
        return {
            **common_state(self),
            "disc_return": torch.from_numpy(self._disc_return.copy()),
            "running_stats": stats,
        }

    def load_state_dict(self, saved: dict) -> None:
        load_common_state(self, saved)
        self._disc_return = saved["disc_return"].numpy().astype(np.float64)
        for name, rs in self._running_stats().items():
            rs.load_state_dict(saved["running_stats"][name])
        self.policy.obs_mean = torch.as_tensor(self.obs_stats.mean, dtype=torch.float32)
        self.policy.obs_std = torch.as_tensor(self.obs_stats.std(), dtype=torch.float32)

    def restart_episodes(self, seed: int) -> None:
        """Start every env afresh (a resume where the simulator's state could not be saved)."""
        self.current = self.env.reset(seed)
        self._ep_return[:] = 0.0
        self._disc_return[:] = 0.0

    def _running_stats(self) -> dict[str, RunningStats]:
        return {"obs": self.obs_stats, "state": self.state_stats, "ret": self.ret_stats}


__all__ = [
    "LOG_STD_MAX",
    "LOG_STD_MIN",
    "GaussianPPOConfig",
    "GaussianPPOTrainer",
    "RunningStats",
    "gaussian_entropy",
    "gaussian_log_prob",
]
