"""What every world model here shares: the Prediction record, normalisers, action encoding and the
post-processing of predicted available actions.

Interface (rollout and calibrate rely on it):
  `loss(batch) -> (total, parts)` with batch = `Transitions.to_torch()`;
  `predict(state, obs, actions, *, sample=False, generator=None) -> Prediction` in raw units;
  `fit_normalizers(batch)` once, from training transitions, before training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from logo_cli.data.transitions import Dims
from logo_cli.models.normalizer import Normalizer

# Bounds of every predicted Gaussian log-variance, in normalised units (std from ~0.007 to ~1.6).
LOGVAR_MIN, LOGVAR_MAX = -10.0, 1.0


@dataclass
class Prediction:
    """One model step for a batch of B joint transitions; raw units except `uncertainty`."""

    next_state: torch.Tensor  # [B,S]
    next_obs: torch.Tensor  # [B,N,O]
    reward: torch.Tensor  # [B]
    terminated_prob: torch.Tensor  # [B]
    next_avail: torch.Tensor  # [B,N,A] bool
    uncertainty: torch.Tensor  # [B], normalised state units (see each model)


class WorldModelBase(nn.Module):
    """Holds dims, hparams and the normalisers; subclasses define the networks, loss and predict."""

    kind: str = ""
    # Everything `build_world_model` needs besides kind and dims (plain Python values); set by subclasses.
    hp: dict

    def __init__(self, dims: Dims, noop_action: int = 0, clip: bool = True):
        super().__init__()
        self.dims = dims
        self.noop_action = int(noop_action)
        n, o, s = dims.n_agents, dims.obs_dim, dims.state_dim
        if dims.discrete and not 0 <= self.noop_action < dims.n_actions:
            raise ValueError(f"noop_action {noop_action} outside 0..{dims.n_actions - 1}")
        self.norm_obs = Normalizer(o)
        self.norm_state = Normalizer(s)
        self.norm_dobs = Normalizer(o)
        self.norm_dstate = Normalizer(s)
        self.norm_reward = Normalizer(1)
        self.joint_action_dim = n * dims.n_actions  # one-hot joint action, or the raw joint vector
        # Per-feature range of the training data (obs pooled over agents); predictions are clipped
        # to it so a multi-step rollout cannot drift into values no real transition ever had.
        self.clip = bool(clip)
        for name, dim in (("state", s), ("obs", o)):
            self.register_buffer(f"{name}_lo", torch.full((dim,), -torch.inf))
            self.register_buffer(f"{name}_hi", torch.full((dim,), torch.inf))

    # ---- data plumbing -------------------------------------------------------------------------
    @torch.no_grad()
    def fit_normalizers(self, batch: dict[str, torch.Tensor]) -> None:
        """Statistics from training transitions: obs pooled over agents, deltas, reward."""
        obs, nobs = batch["obs"].float(), batch["next_obs"].float()
        state, nstate = batch["state"].float(), batch["next_state"].float()
        self.norm_obs.fit(obs)
        self.norm_state.fit(state)
        self.norm_dobs.fit(nobs - obs)
        self.norm_dstate.fit(nstate - state)
        self.norm_reward.fit(batch["reward"].float().reshape(-1, 1))
        both_s, both_o = torch.cat([state, nstate]), torch.cat([obs, nobs]).reshape(-1, obs.shape[-1])
        self.state_lo.copy_(both_s.amin(0)), self.state_hi.copy_(both_s.amax(0))
        self.obs_lo.copy_(both_o.amin(0)), self.obs_hi.copy_(both_o.amax(0))

    def check_actions(self, actions: torch.Tensor) -> None:
        """ValueError unless `actions` is [B,N] integers in 0..A-1 (discrete) or [B,N,Ad] finite
        floats (continuous), with this model's N and A / Ad: a wrong input never reaches a layer."""
        n, a = self.dims.n_agents, self.dims.n_actions
        shape = tuple(actions.shape)
        if self.dims.discrete:
            if actions.ndim != 2 or shape[1] != n or actions.is_floating_point() or actions.is_complex():
                raise ValueError(f"actions {actions.dtype}{list(shape)}: expected integer [B, {n}]")
            if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= a):
                raise ValueError(f"actions: values outside 0..{a - 1}")
            return
        if actions.ndim != 3 or shape[1:] != (n, a) or not actions.is_floating_point():
            raise ValueError(f"actions {actions.dtype}{list(shape)}: expected float [B, {n}, {a}]")
        if not bool(torch.isfinite(actions).all()):
            raise ValueError("actions: NaN or inf values")

    def encode_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """[B,N] int (discrete) -> one-hot joint [B,N*A]; [B,N,Ad] float -> flat [B,N*Ad] in [-1, 1].

        Continuous actions are not normalised, as one-hots are not: both already lie on a unit scale
        ([-1, 1], the env adapters' convention), and a fixed encoding keeps a model valid for policies
        whose action statistics differ from the dataset's. They are clipped to [-1, 1] because the
        simulator clips them too: the model then sees the action that was actually executed."""
        self.check_actions(actions)
        if self.dims.discrete:
            onehot = F.one_hot(actions.long(), self.dims.n_actions).to(torch.float32)
            return onehot.reshape(actions.shape[0], -1)
        return actions.float().clamp(-1.0, 1.0).reshape(actions.shape[0], -1)

    def targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Normalised inputs and training targets shared by all models' losses."""
        obs, nobs = batch["obs"].float(), batch["next_obs"].float()
        state, nstate = batch["state"].float(), batch["next_state"].float()
        return {
            "obs_n": self.norm_obs(obs),
            "state_n": self.norm_state(state),
            "nobs_n": self.norm_obs(nobs),
            "act": self.encode_actions(batch["actions"]),
            "dobs_n": self.norm_dobs(nobs - obs),
            "dstate_n": self.norm_dstate(nstate - state),
            "reward_n": self.norm_reward(batch["reward"].float().reshape(-1, 1)).squeeze(-1),
            "terminated": batch["terminated"].float().reshape(-1),
            "next_avail": batch["next_avail_actions"].float(),
        }

    # ---- shared head losses and post-processing -----------------------------------------------
    def head_losses(
        self, reward: torch.Tensor, term_logit: torch.Tensor, avail_logits: torch.Tensor, t: dict
    ) -> dict[str, torch.Tensor]:
        """Reward MSE (normalised), termination BCE, next-available-action BCE (discrete only)."""
        parts = {
            "reward": F.mse_loss(reward, t["reward_n"]),
            "term": F.binary_cross_entropy_with_logits(term_logit, t["terminated"]),
        }
        if self.dims.discrete:
            parts["avail"] = F.binary_cross_entropy_with_logits(avail_logits, t["next_avail"])
        return parts

    def finish_avail(
        self, avail_logits: torch.Tensor, obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Threshold next-available logits [B,N,A]; returns (avail bool, dead-next bool [B,N]).

        An agent is dead next step when it is dead now (all-zero obs: death is absorbing) or when the
        head predicts its no-op as the only available action. A dead agent gets only its no-op; any
        other agent left with nothing available gets its most likely action, so a policy can act.
        """
        b, n = obs.shape[:2]
        if not self.dims.discrete:
            return torch.ones(b, n, 1, dtype=torch.bool, device=obs.device), torch.zeros(
                b, n, dtype=torch.bool, device=obs.device
            )
        avail = avail_logits > 0
        noop = F.one_hot(torch.tensor(self.noop_action, device=obs.device), self.dims.n_actions).bool()
        only_noop = (avail == noop).all(-1)
        dead = (obs == 0).all(-1) | only_noop
        avail = torch.where(dead[..., None], noop.expand_as(avail), avail)
        none = ~avail.any(-1, keepdim=True)
        best = F.one_hot(avail_logits.argmax(-1), self.dims.n_actions).bool()
        avail = torch.where(none, best, avail)
        return avail, dead

    def bound(self, next_state: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip predictions to the training data's per-feature range (when `clip`)."""
        if not self.clip:
            return next_state, next_obs
        return next_state.clamp(self.state_lo, self.state_hi), next_obs.clamp(self.obs_lo, self.obs_hi)

    def state_units(self, delta_n: torch.Tensor) -> torch.Tensor:
        """A difference expressed in normalised-delta units -> normalised *state* units."""
        return delta_n * self.norm_dstate.std / self.norm_state.std
