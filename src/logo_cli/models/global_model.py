"""The `global` baseline: one MLP from (s_t, all o_t, joint action) straight to every target.

It predicts, in normalised units, Gaussians over the next-state delta and every agent's next-obs
delta, plus the team reward, the termination logit and the next-available-action logits. The same
class, built with `members > 1`, is the body of the ensemble baseline (ensemble_model.py): all members
are evaluated by one group-batched einsum per layer.
Uncertainty of the single model: its predicted next-state std, averaged over state dims, in
normalised state units (so calibrate can compare it with LOGO's discrepancy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from logo_cli.data.transitions import Dims
from logo_cli.models.layers import BatchedMLP, soft_clamp
from logo_cli.models.wm_base import LOGVAR_MAX, LOGVAR_MIN, Prediction, WorldModelBase

DEFAULT_WEIGHTS = {
    "w_state": 1.0,  # next-state Gaussian NLL
    "w_obs": 1.0,  # next-obs Gaussian NLL
    "w_reward": 1.0,  # normalised reward MSE
    "w_term": 1.0,  # termination BCE
    "w_avail": 1.0,  # next-available-action BCE
}


def _nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gaussian NLL per member: [B,M,...] -> [M]."""
    e = 0.5 * (((target - mean) ** 2) * torch.exp(-logvar) + logvar)
    return e.transpose(0, 1).reshape(e.shape[1], -1).mean(-1)


def _per_member(e: torch.Tensor) -> torch.Tensor:
    return e.transpose(0, 1).reshape(e.shape[1], -1).mean(-1)


class DirectModel(WorldModelBase):
    kind = "global"

    def __init__(
        self,
        dims: Dims,
        hidden: int = 256,
        layers: int = 2,
        members: int = 1,
        noop_action: int = 0,
        clip: bool = True,
        **weights: float,
    ):
        super().__init__(dims, noop_action, clip)
        unknown = set(weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown {self.kind} hparams: {sorted(unknown)}")
        self.w = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in weights.items()}}
        self.members = int(members)
        self.hp = {"hidden": hidden, "layers": layers, "noop_action": self.noop_action, "clip": self.clip}
        self.hp.update(self.w)
        n, o, s = dims.n_agents, dims.obs_dim, dims.state_dim
        self.in_dim = s + n * o + self.joint_action_dim
        self.n_avail_out = n * dims.n_actions if dims.discrete else 0
        self.out_dim = 2 * s + 2 * n * o + 2 + self.n_avail_out
        self.net = BatchedMLP(self.members, self.in_dim, hidden, layers, self.out_dim)

    def forward_members(self, state_n: torch.Tensor, obs_n: torch.Tensor, act: torch.Tensor) -> dict:
        """All members at once; every output has a member axis: [B,M,...]."""
        x = torch.cat([state_n, obs_n.flatten(1), act], dim=-1)
        b, m = x.shape[0], self.members
        h = self.net(x.unsqueeze(1).expand(b, m, -1)) if m > 1 else self.net(x).unsqueeze(1)
        n, o, s = self.dims.n_agents, self.dims.obs_dim, self.dims.state_dim
        sizes = [s, s, n * o, n * o, 1, 1, self.n_avail_out]
        smean, slv, omean, olv, rew, term, avail = h.split(sizes, dim=-1)
        return {
            "smean": smean,
            "slogvar": soft_clamp(slv, LOGVAR_MIN, LOGVAR_MAX),
            "omean": omean.reshape(b, m, n, o),
            "ologvar": soft_clamp(olv, LOGVAR_MIN, LOGVAR_MAX).reshape(b, m, n, o),
            "reward": rew.squeeze(-1),
            "term": term.squeeze(-1),
            "avail": avail.reshape(b, m, n, -1),
        }

    def member_losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total per member [M] and each part per member."""
        t = self.targets(batch)
        f = self.forward_members(t["state_n"], t["obs_n"], t["act"])
        m = self.members
        parts = {
            "state": _nll(f["smean"], f["slogvar"], t["dstate_n"][:, None]),
            "obs": _nll(f["omean"], f["ologvar"], t["dobs_n"][:, None]),
            "reward": _per_member((f["reward"] - t["reward_n"][:, None]) ** 2),
            "term": _per_member(
                F.binary_cross_entropy_with_logits(
                    f["term"], t["terminated"][:, None].expand(-1, m), reduction="none"
                )
            ),
        }
        if self.dims.discrete:
            target = t["next_avail"][:, None].expand_as(f["avail"])
            parts["avail"] = _per_member(
                F.binary_cross_entropy_with_logits(f["avail"], target, reduction="none")
            )
        total = sum(self.w[f"w_{k}"] * v for k, v in parts.items())
        return total, parts

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        # Mean over members: Adam is scale-invariant, and parts stay comparable with the single model.
        total, parts = self.member_losses(batch)
        return total.mean(), {k: float(v.detach().mean()) for k, v in parts.items()}

    def _combine(self, f: dict, sample: bool, generator: torch.Generator | None) -> tuple[dict, torch.Tensor]:
        """Member outputs -> one prediction per row (normalised) and the uncertainty [B]."""
        one = {k: v[:, 0] for k, v in f.items()}
        if sample:
            one = _sample_gaussians(one, generator)
        std = torch.exp(0.5 * f["slogvar"][:, 0])
        return one, self.state_units(std).mean(-1)

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
        state, obs = state.float(), obs.float()
        f = self.forward_members(self.norm_state(state), self.norm_obs(obs), self.encode_actions(actions))
        one, uncertainty = self._combine(f, sample, generator)
        avail, dead = self.finish_avail(one["avail"], obs)
        next_state, next_obs = self.bound(
            state + self.norm_dstate.denormalize(one["smean"]), obs + self.norm_dobs.denormalize(one["omean"])
        )
        return Prediction(
            next_state=next_state,
            next_obs=next_obs.masked_fill(dead[..., None], 0.0),
            reward=self.norm_reward.denormalize(one["reward"][:, None]).squeeze(-1),
            terminated_prob=torch.sigmoid(one["term"]),
            next_avail=avail,
            uncertainty=uncertainty,
        )


def _sample_gaussians(one: dict, generator: torch.Generator | None) -> dict:
    """Replace the state and obs means by draws from their predicted Gaussians."""
    out = dict(one)
    for mean_key, lv_key in (("smean", "slogvar"), ("omean", "ologvar")):
        mean = one[mean_key]
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        out[mean_key] = mean + noise * torch.exp(0.5 * one[lv_key])
    return out
