"""Online MAPPO on a batched simulator: how the collector's behaviour policies are trained.

MAPPO (Yu et al., "The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games", 2022), in
the feed-forward, parameter-shared form: one actor for all agents (models.agent_net.AgentNet in
"logits" mode, one-hot agent id, so a snapshot saves with policies.torch_policy.save_policy) and one
centralised critic V(s) on the global state, trained on the team reward. Deviations from the paper's
reference setup, for speed on a small CPU:
- no RNN (the offline pipeline samples single transitions, so its policies are feed-forward too);
- no value normalisation (SMAX team returns lie in [0, 2]);
- one team value and one advantage shared by all agents (a team reward, a centralised critic);
- time-outs bootstrap from V(final state); real ends (win, loss) do not.
Agent-steps with a single available action (dead agents: stop only) carry no choice and are left
out of the policy and entropy terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from logo_cli.envs.base import EnvObs, MultiAgentEnv
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import AgentNet, mlp

# A finite "minus infinity" for masked logits: keeps entropy and log-probs free of NaN (0 * -inf).
_MASKED = -1e9


@dataclass(frozen=True)
class PPOConfig:
    num_envs: int = 64  # simulator copies stepped together
    rollout_len: int = 128  # steps per env between two updates
    lr: float = 1e-3  # Adam learning rate (actor and critic), annealed linearly to 10% over training
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE lambda
    clip: float = 0.2  # PPO ratio clip
    epochs: int = 4  # passes over each rollout
    minibatches: int = 4  # minibatches per pass
    ent_coef: float = 0.01  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # gradient clipping (global norm)
    hidden: int = 128  # hidden width of actor and critic
    layers: int = 2  # hidden layers of actor and critic


@dataclass
class Rollout:
    """T steps of B envs: obs [T,B,N,O], state [T,B,S], avail [T,B,N,A] bool, actions/logp [T,B,N],
    value/next_value/reward [T,B], terminated/done [T,B] bool."""

    obs: torch.Tensor
    state: torch.Tensor
    avail: torch.Tensor
    actions: torch.Tensor
    logp: torch.Tensor
    value: torch.Tensor
    next_value: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    done: torch.Tensor


def masked_logits(actor: AgentNet, obs: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    return actor(obs).masked_fill(~avail, _MASKED)


def ppo_epochs(
    flat: dict[str, torch.Tensor],
    n: int,
    loss_fn: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    opt: torch.optim.Optimizer,
    params: list[nn.Parameter],
    cfg: PPOConfig,
    gen: torch.Generator,
) -> dict[str, float]:
    """`cfg.epochs` passes over the `n` flattened rollout rows in `cfg.minibatches` shuffled
    minibatches: Adam on `loss_fn(minibatch)["loss"]` with the gradient norm clipped; returns the
    mean policy loss, value loss, entropy and clip fraction over the minibatches."""
    stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clip_frac": 0.0}
    count = 0
    mb = max(1, n // cfg.minibatches)
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for lo in range(0, n - mb + 1, mb):
            idx = perm[lo : lo + mb]
            losses = loss_fn({k: v[idx] for k, v in flat.items()})
            opt.zero_grad()
            losses["loss"].backward()
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            for k in stats:
                stats[k] += float(losses[k])
            count += 1
    return {k: v / max(count, 1) for k, v in stats.items()}


def gae(rollout: Rollout, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets [T,B]. `next_value` is V of the step's own successor (the final
    state where an episode ended), so a time-out bootstraps and only a real end stops the value."""
    return gae_arrays(
        rollout.reward, rollout.value, rollout.next_value, rollout.terminated, rollout.done, gamma, lam
    )


def gae_arrays(
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """gae() on bare [T,B] tensors (terminated, done bool), for learners with their own rollout."""
    delta = reward + gamma * (~terminated) * next_value - value
    adv = torch.zeros_like(delta)
    running = torch.zeros_like(delta[0])
    for t in range(delta.shape[0] - 1, -1, -1):
        running = delta[t] + gamma * lam * (~done[t]) * running
        adv[t] = running
    return adv, adv + value


class PPOTrainer:
    """Holds the networks, the optimiser, the envs' current observation and the counters."""

    def __init__(self, env: MultiAgentEnv, cfg: PPOConfig, seed: int, total_updates: int):
        spec = env.spec
        torch.manual_seed(seed)
        self.env, self.cfg, self.total_updates = env, cfg, max(1, total_updates)
        self.actor = AgentNet(spec.obs_dim, spec.n_agents, spec.n_actions, cfg.hidden, cfg.layers)
        self.critic = mlp(spec.state_dim, cfg.hidden, cfg.layers, 1)
        params = list(self.actor.parameters()) + list(self.critic.parameters())
        self.opt = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
        self.gen = torch.Generator().manual_seed(seed)
        self.current: EnvObs = env.reset(seed)
        self.env_steps = 0
        self.updates = 0
        # Episode returns finished during the last rollout (stochastic actions): the learning curve.
        self._ep_return = np.zeros(env.num_envs)
        self.recent_returns: list[float] = []
        self.recent_wins: list[bool] = []

    @torch.no_grad()
    def collect(self) -> Rollout:
        T, env = self.cfg.rollout_len, self.env
        B, N = env.num_envs, env.spec.n_agents
        obs = np.zeros((T, B, N, env.spec.obs_dim), np.float32)
        avail = np.zeros((T, B, N, env.spec.n_actions), bool)
        state = np.zeros((T, B, env.spec.state_dim), np.float32)
        next_state = np.zeros_like(state)
        actions = torch.zeros((T, B, N), dtype=torch.int64)
        logp = torch.zeros((T, B, N))
        reward = np.zeros((T, B), np.float32)
        terminated = np.zeros((T, B), bool)
        done = np.zeros((T, B), bool)
        self.recent_returns, self.recent_wins = [], []
        for t in range(T):
            cur = self.current
            obs[t], avail[t], state[t] = cur.obs, cur.avail_actions, cur.state
            logp_all = torch.log_softmax(
                masked_logits(self.actor, torch.from_numpy(obs[t]), torch.from_numpy(avail[t])), dim=-1
            )
            # Gumbel-max sampling with our own generator, so a seed fixes the run.
            u = torch.rand(logp_all.shape, generator=self.gen).clamp_(1e-10, 1.0)
            act = (logp_all - torch.log(-torch.log(u))).argmax(-1)
            step = env.step(act.numpy())
            actions[t], logp[t] = act, logp_all.gather(-1, act.unsqueeze(-1)).squeeze(-1)
            next_state[t], reward[t], terminated[t], done[t] = (
                step.next.state, step.reward, step.terminated, step.done
            )  # fmt: skip
            self._ep_return += step.reward
            for b in np.nonzero(step.done)[0]:
                self.recent_returns.append(float(self._ep_return[b]))
                self.recent_wins.append(bool(step.won[b]))
                self._ep_return[b] = 0.0
            self.current = step.reset
        self.env_steps += T * B
        # Values in two batched calls after the rollout rather than two small calls per step.
        state_t, next_t = torch.from_numpy(state), torch.from_numpy(next_state)
        return Rollout(
            obs=torch.from_numpy(obs),
            state=state_t,
            avail=torch.from_numpy(avail),
            actions=actions,
            logp=logp,
            value=self.critic(state_t).squeeze(-1),
            next_value=self.critic(next_t).squeeze(-1),
            reward=torch.from_numpy(reward),
            terminated=torch.from_numpy(terminated),
            done=torch.from_numpy(done),
        )

    def update(self, ro: Rollout) -> dict[str, float]:
        cfg = self.cfg
        frac = 1.0 - self.updates / self.total_updates
        for g in self.opt.param_groups:
            g["lr"] = cfg.lr * max(0.1, frac)
        adv, target = gae(ro, cfg.gamma, cfg.gae_lambda)
        n = ro.reward.numel()
        flat = {
            "obs": ro.obs.flatten(0, 1),
            "state": ro.state.flatten(0, 1),
            "avail": ro.avail.flatten(0, 1),
            "actions": ro.actions.flatten(0, 1),
            "logp": ro.logp.flatten(0, 1),
            "adv": adv.flatten(),
            "target": target.flatten(),
        }
        params = list(self.actor.parameters()) + list(self.critic.parameters())
        stats = ppo_epochs(flat, n, self._loss, self.opt, params, cfg, self.gen)
        self.updates += 1
        return stats

    def _loss(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        logp_all = torch.log_softmax(masked_logits(self.actor, b["obs"], b["avail"]), dim=-1)
        logp = logp_all.gather(-1, b["actions"].unsqueeze(-1)).squeeze(-1)  # [M,N]
        choice = (b["avail"].sum(-1) > 1).float()  # agent-steps with a real decision
        denom = choice.sum().clamp(min=1.0)
        adv = (b["adv"] - b["adv"].mean()) / (b["adv"].std() + 1e-8)
        ratio = torch.exp(logp - b["logp"])
        a = adv.unsqueeze(-1)
        surr = torch.min(ratio * a, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a)
        policy_loss = -(surr * choice).sum() / denom
        entropy = (-(logp_all.exp() * logp_all).sum(-1) * choice).sum() / denom
        value_loss = 0.5 * (self.critic(b["state"]).squeeze(-1) - b["target"]).pow(2).mean()
        loss = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss
        clip_frac = (((ratio - 1).abs() > cfg.clip).float() * choice).sum() / denom
        return {
            "loss": loss,
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy.detach(),
            "clip_frac": clip_frac.detach(),
        }

    def iterate(self) -> dict[str, float]:
        """One rollout and one PPO update; returns the losses and the rollout's episode stats."""
        stats = self.update(self.collect())
        if self.recent_returns:
            stats["train_return"] = float(np.mean(self.recent_returns))
            stats["train_win_rate"] = float(np.mean(self.recent_wins))
        return stats

    def state_dict(self) -> dict:
        """What a resumed run needs besides the simulator's own state: networks, optimiser, the
        sampling generator, counters, the envs' current observations and running episode returns.
        Tensors and plain values only, so it loads with torch.load(weights_only=True)."""
        return common_state(self)

    def load_state_dict(self, saved: dict) -> None:
        load_common_state(self, saved)

    def restart_episodes(self, seed: int) -> None:
        """Start every env afresh (a resume where the simulator's state could not be saved)."""
        self.current = self.env.reset(seed)
        self._ep_return[:] = 0.0


def env_obs_tensors(cur: EnvObs) -> dict[str, torch.Tensor]:
    return {
        "obs": torch.from_numpy(cur.obs.copy()),
        "state": torch.from_numpy(cur.state.copy()),
        "avail_actions": torch.from_numpy(cur.avail_actions.copy()),
    }


def common_state(trainer) -> dict:
    """The state PPOTrainer and GaussianPPOTrainer share (see PPOTrainer.state_dict)."""
    return {
        "actor": trainer.actor.state_dict(),
        "critic": trainer.critic.state_dict(),
        "opt": trainer.opt.state_dict(),
        "gen": trainer.gen.get_state(),
        "env_steps": trainer.env_steps,
        "updates": trainer.updates,
        "ep_return": torch.from_numpy(trainer._ep_return.copy()),
        "current": env_obs_tensors(trainer.current),
    }


def load_common_state(trainer, saved: dict) -> None:
    """Restore what PPOTrainer.state_dict saves (shared by the Gaussian trainer), after checking
    that the saved envs' observations have the shapes this trainer's envs produce."""
    cur = saved["current"]
    now = trainer.current
    for name in ("obs", "state", "avail_actions"):
        shape, expected = tuple(cur[name].shape), getattr(now, name).shape
        if shape != expected:
            raise LogoError(f"resume: saved {name} of shape {shape}, the envs give {expected}")
    trainer.actor.load_state_dict(saved["actor"])
    trainer.critic.load_state_dict(saved["critic"])
    trainer.opt.load_state_dict(saved["opt"])
    trainer.gen.set_state(saved["gen"])
    trainer.env_steps, trainer.updates = int(saved["env_steps"]), int(saved["updates"])
    trainer._ep_return = saved["ep_return"].numpy().astype(np.float64)
    trainer.current = EnvObs(
        obs=cur["obs"].numpy().copy(),
        state=cur["state"].numpy().copy(),
        avail_actions=cur["avail_actions"].numpy().copy(),
    )
