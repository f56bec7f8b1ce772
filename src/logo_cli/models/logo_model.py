"""LOGO: the Local-to-Global world model (arXiv 2601.07463), as docs/method.md's "[ours]" decisions
read it; deviations and interpretations are listed in docs/world-model.md.

Three parts, all in normalised units:
- local predictive autoencoders, one per agent (agent-batched weights) or one shared network with an
  agent-id one-hot: (o_t^i, s_t, the joint action or agent i's own action: `local_action`) -> latent
  z^i -> Gaussian over o_{t+1}^i - o_t^i, and a reconstruction head rebuilding o_t^i from z^i;
- a deductive autoencoder: (all next local obs, s_t) -> latent -> next-state delta (Gaussian), team
  reward, termination logit, per-agent next-available logits, and a reconstruction of its input;
- an auxiliary state encoder on the predictive path: (z^1..z^N, s_t) -> next-state delta directly.
Uncertainty u = RMS over state dims of (aux next state - deduced next state), in normalised state units
(`uncertainty="disagreement"`, the paper's); `uncertainty="total"` adds the deductive Gaussian's own
variance: u = sqrt(mean over dims of (disagreement^2 + variance)), the two parts of an expected
squared error (measured in docs/world-model-benchmark.md).

Options that make a predicted observation look like a real one (models/logo_heads.py; measured in
docs/method.md): `switch_gates` predicts each switching group of features as a present/absent switch
with a value conditional on presence; `avail_from="obs"` reads the next available actions from each
agent's predicted next observation instead of from the deductive latent.

`arch="pooled"` (models/logo_scalable.py) replaces the inputs whose width grows with the team (the
whole state and joint action in every local input, every agent's raw obs in the deductive input)
by encodings of constant width per agent; the networks after them and the losses are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from logo_cli.choices import LocalAction, Uncertainty, values
from logo_cli.data.transitions import Dims
from logo_cli.models.layers import BatchedLinear, BatchedMLP, gaussian_nll, soft_clamp
from logo_cli.models.logo_heads import AVAIL_FROM, ObsAvailHead, SwitchGates, beta_nll
from logo_cli.models.logo_scalable import ARCHS, PooledInputs, WideHead
from logo_cli.models.wm_base import LOGVAR_MAX, LOGVAR_MIN, Prediction, WorldModelBase

LOCAL_ACTIONS = values(LocalAction)
UNCERTAINTIES = values(Uncertainty)
DEFAULT_WEIGHTS = {
    "w_pred": 1.0,  # local next-obs Gaussian NLL
    "w_rec": 0.1,  # both reconstruction losses (they shape the latents; prediction is the job)
    "w_state": 1.0,  # deductive next-state Gaussian NLL (true next obs in)
    "w_reward": 1.0,  # normalised reward MSE
    "w_term": 1.0,  # termination BCE
    "w_avail": 1.0,  # next-available-action BCE
    "w_aux": 1.0,  # auxiliary state encoder MSE
    "w_reg": 0.5,  # predicted next obs through the deductive model -> true next state and heads
    "w_gate": 1.0,  # switching-group presence BCE (with switch_gates)
    "nll_beta": 0.0,  # beta-NLL exponent of the local and deductive Gaussian losses (0: plain NLL)
}


class LogoWorldModel(WorldModelBase):
    kind = "logo"

    def __init__(
        self,
        dims: Dims,
        hidden: int = 256,
        latent: int = 64,
        layers: int = 2,
        dec_layers: int = 1,
        share_local: bool = False,
        ded_delta: bool = True,
        noop_action: int = 0,
        clip: bool = True,
        local_action: str | None = None,
        switch_gates: bool = False,
        avail_from: str = "state",
        arch: str = "concat",
        pool_rank: int = 64,
        uncertainty: str = "disagreement",
        **weights: float,
    ):
        super().__init__(dims, noop_action, clip)
        # What action enters agent i's local model: the joint action (the discrete default, decision 2
        # of docs/method.md) or agent i's own action vector (the continuous default: a local model of
        # local inputs; the other agents' torques reach it only through the state context).
        if local_action is None:
            local_action = "joint" if dims.discrete else "own"
        if local_action not in LOCAL_ACTIONS:
            raise ValueError(f"local_action {local_action!r}: expected one of {', '.join(LOCAL_ACTIONS)}")
        self.local_action = local_action
        if avail_from not in AVAIL_FROM:
            raise ValueError(f"avail_from {avail_from!r}: expected one of {', '.join(AVAIL_FROM)}")
        if arch not in ARCHS:
            raise ValueError(f"arch {arch!r}: expected one of {', '.join(ARCHS)}")
        if uncertainty not in UNCERTAINTIES:
            raise ValueError(f"uncertainty {uncertainty!r}: expected one of {', '.join(UNCERTAINTIES)}")
        self.uncertainty = uncertainty
        unknown = set(weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown LOGO hparams: {sorted(unknown)}")
        self.w = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in weights.items()}}
        self.hp = {
            "hidden": hidden,
            "latent": latent,
            "layers": layers,
            "dec_layers": dec_layers,
            "share_local": bool(share_local),
            "ded_delta": bool(ded_delta),
            "noop_action": self.noop_action,
            "clip": self.clip,
            "local_action": self.local_action,
            "switch_gates": bool(switch_gates),
            "avail_from": avail_from,
            "arch": arch,
            **({"pool_rank": int(pool_rank)} if arch == "pooled" else {}),
            "uncertainty": uncertainty,
            **self.w,
        }
        n, o, s = dims.n_agents, dims.obs_dim, dims.state_dim
        self.ded_delta = bool(ded_delta)
        # the pooled layout: one shared local network (share_local is implied) and encoded inputs
        self.pooled = (
            PooledInputs(dims, hidden, latent, local_action, self.ded_delta, pool_rank)
            if arch == "pooled"
            else None
        )
        self.share_local = bool(share_local) or self.pooled is not None
        groups = 1 if self.share_local else n
        act_in = self.joint_action_dim if local_action == "joint" else self.joint_action_dim // n
        local_in = o + s + act_in + (n if share_local else 0)
        ded_in = (2 if ded_delta else 1) * n * o + s
        aux_in = n * latent + s
        if self.pooled is not None:
            local_in, ded_in, aux_in = self.pooled.local_in, self.pooled.set_in, self.pooled.set_in
        # `layers` is the depth of each encoder->decoder path (as of the global MLP): the decoders
        # take `dec_layers` of it, the encoders the rest (at least one).
        enc_layers = max(1, layers - dec_layers)
        self.local_enc = BatchedMLP(groups, local_in, hidden, enc_layers, latent)
        # local decoder outputs: next-obs-delta mean | gate logits (switch_gates) | log-variance (last,
        # so a mean-only prediction computes a prefix of the output layer)
        self.gates = SwitchGates(o) if switch_gates else None
        self.n_local_mean = 2 * o if switch_gates else o
        if self.pooled is None:
            self.local_dec = BatchedMLP(groups, latent, hidden, dec_layers, self.n_local_mean + o)
        else:  # the observation-wide outputs through a latent-wide layer
            self.local_dec = WideHead(latent, hidden, dec_layers, pool_rank, self.n_local_mean + o)
        self.local_rec = BatchedLinear(groups, latent, o)
        own_avail = avail_from == "obs" and dims.discrete
        embed = latent if self.pooled is not None else None
        self.avail_head = ObsAvailHead(n, o, dims.n_actions, hidden, layers, embed) if own_avail else None
        self.n_avail_out = n * dims.n_actions if dims.discrete and not own_avail else 0
        self.ded_enc = BatchedMLP(1, ded_in, hidden, enc_layers, latent)
        # outputs: state mean | reward | termination | available logits | state log-variance (last,
        # so a mean-only prediction computes a prefix of the output layer)
        self.ded_dec = BatchedMLP(1, latent, hidden, dec_layers, 2 * s + 2 + self.n_avail_out)
        self.ded_rec = BatchedLinear(1, latent, ded_in)
        self.aux_enc = BatchedMLP(1, aux_in, hidden, dec_layers, s)

    # ---- the three parts --------------------------------------------------------------------------
    def _local(self, obs_n: torch.Tensor, state_n: torch.Tensor, act: torch.Tensor, need_var: bool = True):
        """-> latents [B,N,Z], next-obs-delta mean [B,N,O], gate logits [B,N,O] (None without
        switch_gates) and log-variance [B,N,O] (normalised; None when not `need_var`)."""
        b, n = obs_n.shape[:2]
        # the input's parts, in their order; [B,1,k] parts are shared by the agents, None is the
        # agent id (BatchedLinear.forward_parts: nothing is repeated per agent)
        parts: list[torch.Tensor | None]
        if self.pooled is not None:
            parts = self.pooled.local(obs_n, state_n, act)
        elif self.local_action == "joint":
            parts = [obs_n, torch.cat([state_n, act], dim=-1).unsqueeze(1)]
        else:  # the encoded joint action is agent-major: row i of [B,N,A or Ad] is agent i's own
            parts = [obs_n, state_n.unsqueeze(1), act.reshape(b, n, -1)]
        if self.share_local and self.pooled is None:
            parts.append(None)
        z = self.local_enc.forward_parts(parts)
        o = self.dims.obs_dim
        h = self.local_dec(z, None if need_var else self.n_local_mean)
        mean, gate = h[..., :o], (h[..., o : 2 * o] if self.gates is not None else None)
        logvar = soft_clamp(h[..., self.n_local_mean :], LOGVAR_MIN, LOGVAR_MAX) if need_var else None
        return z, mean, gate, logvar

    def _deduce(
        self, nobs_n: torch.Tensor, dobs_n: torch.Tensor, state_n: torch.Tensor, need_var: bool = True
    ):
        """-> latent, ded input, next-state-delta mean/log-var [B,S], reward [B], term logit [B],
        next-available logits [B,N,A] (an empty last axis for continuous actions); log-var None
        when not `need_var`.

        With `ded_delta` the input also holds the normalised obs changes: the next state's change is
        then a well-conditioned function of them, instead of a small difference of large values."""
        if self.pooled is not None:
            x = self.pooled.deductive(nobs_n, dobs_n, state_n)
        else:
            parts = [nobs_n.flatten(1), dobs_n.flatten(1)] if self.ded_delta else [nobs_n.flatten(1)]
            x = torch.cat([*parts, state_n], dim=-1)
        zd = self.ded_enc(x)
        s = self.dims.state_dim
        head = s + 2 + self.n_avail_out
        h = self.ded_dec(zd, None if need_var else head)
        mean, reward, term = h[:, :s], h[:, s], h[:, s + 1]
        avail = h[:, s + 2 : head].reshape(h.shape[0], self.dims.n_agents, -1)
        logvar = soft_clamp(h[:, head:], LOGVAR_MIN, LOGVAR_MAX) if need_var else None
        return zd, x, mean, logvar, reward, term, avail

    def _aux(self, z: torch.Tensor, state_n: torch.Tensor) -> torch.Tensor:
        if self.pooled is not None:
            return self.aux_enc(self.pooled.aux(z, state_n))
        return self.aux_enc(torch.cat([z.flatten(1), state_n], dim=-1))

    def _next_obs(self, obs, dobs_n, gate, sample: bool = False, generator=None):
        """Raw obs + a normalised delta (+ switches) -> raw next obs, its normalised value and its
        normalised delta (the deductive model's input units)."""
        next_obs = obs + self.norm_dobs.denormalize(dobs_n)
        if self.gates is None:
            return next_obs, self.norm_obs(next_obs), dobs_n
        present = self.gates.draw(gate, sample, generator)
        next_obs = next_obs.masked_fill(~present, 0.0)
        return next_obs, self.norm_obs(next_obs), self.norm_dobs(next_obs - obs)

    def _avail(self, nobs_n: torch.Tensor, deduced: torch.Tensor) -> torch.Tensor:
        """Next-available logits: from each agent's next observation (avail_from="obs") or the
        deductive model's."""
        return deduced if self.avail_head is None else self.avail_head(nobs_n)

    @torch.no_grad()
    def fit_normalizers(self, batch: dict[str, torch.Tensor]) -> None:
        super().fit_normalizers(batch)
        if self.gates is not None:
            self.gates.fit(batch["obs"].float())

    # ---- training ---------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        t = self.targets(batch)
        w = self.w
        obs = batch["obs"].float()
        z, mean, gate, logvar = self._local(t["obs_n"], t["state_n"], t["act"])
        beta = w["nll_beta"]
        if self.gates is None:
            pred = (
                beta_nll(mean, logvar, t["dobs_n"], beta=beta)
                if beta
                else gaussian_nll(mean, logvar, t["dobs_n"])
            )
        else:  # values are learned where they exist next step; whether they do is the gates' job
            nobs = batch["next_obs"].float()
            pred = beta_nll(mean, logvar, t["dobs_n"], self.gates.presence(nobs), beta)
        parts: dict[str, torch.Tensor] = {
            "pred": pred,
            "rec_local": F.mse_loss(self.local_rec(z), t["obs_n"]),
        }
        if self.gates is not None:
            parts["gate"] = self.gates.loss(gate, nobs)
        zd, ded_x, smean, slogvar, reward, term, avail = self._deduce(t["nobs_n"], t["dobs_n"], t["state_n"])
        parts["state"] = (
            beta_nll(smean, slogvar, t["dstate_n"], beta=beta)
            if beta
            else gaussian_nll(smean, slogvar, t["dstate_n"])
        )
        # a pooled input is a learned code: reconstructed, but not pulled towards being easy to
        parts["rec_ded"] = F.mse_loss(self.ded_rec(zd), ded_x if self.pooled is None else ded_x.detach())
        parts.update(self.head_losses(reward, term, self._avail(t["nobs_n"], avail), t))
        parts["aux"] = F.mse_loss(self._aux(z, t["state_n"]), t["dstate_n"])
        # Regulariser: the local models' predicted next obs must also deduce the true next state.
        _, pred_nobs_n, pred_dobs_n = self._next_obs(obs, mean, gate)
        # Every head is trained on that input too: at inference the deductive model only ever sees
        # predicted obs, and heads fitted to true obs alone misread them (termination above all).
        _, _, reg_state, _, reg_reward, reg_term, reg_avail = self._deduce(
            pred_nobs_n, pred_dobs_n, t["state_n"], need_var=False
        )
        # The observation-read avail head learns to read predicted obs, but does not bend them: its
        # input is detached, so the local models' only targets stay the true next observations.
        reg_heads = self.head_losses(reg_reward, reg_term, self._avail(pred_nobs_n.detach(), reg_avail), t)
        parts["reg"] = F.mse_loss(reg_state, t["dstate_n"]) + sum(reg_heads.values())
        weight = {
            "pred": w["w_pred"],
            "rec_local": w["w_rec"],
            "rec_ded": w["w_rec"],
            "state": w["w_state"],
            "reward": w["w_reward"],
            "term": w["w_term"],
            "avail": w["w_avail"],
            "aux": w["w_aux"],
            "reg": w["w_reg"],
            "gate": w["w_gate"],
        }
        total = sum(weight[k] * v for k, v in parts.items())
        return total, {k: float(v.detach()) for k, v in parts.items()}

    # ---- inference: only what a rollout needs (no reconstruction heads) --------------------------
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
        state_n = self.norm_state(state)
        act = self.encode_actions(actions)
        z, mean, gate, logvar = self._local(self.norm_obs(obs), state_n, act, need_var=sample)
        dobs_n = mean
        if sample:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            dobs_n = mean + noise * torch.exp(0.5 * logvar)
        next_obs, nobs_n, dobs_n = self._next_obs(obs, dobs_n, gate, sample, generator)
        total = self.uncertainty == "total"
        _, _, smean, slogvar, reward, term, avail_logits = self._deduce(
            nobs_n, dobs_n, state_n, need_var=sample or total
        )
        avail_logits = self._avail(nobs_n, avail_logits)
        dstate_n = smean
        if sample:
            noise = torch.randn(smean.shape, generator=generator, device=smean.device, dtype=smean.dtype)
            dstate_n = smean + noise * torch.exp(0.5 * slogvar)
        aux = self._aux(z, state_n)
        spread = self.state_units(aux - smean).pow(2)
        if total:  # the deductive Gaussian's variance, in the same normalised state units
            spread = spread + self.state_units(torch.exp(0.5 * slogvar)).pow(2)
        uncertainty = spread.mean(-1).sqrt()
        avail, dead = self.finish_avail(avail_logits, obs)
        next_state, next_obs = self.bound(state + self.norm_dstate.denormalize(dstate_n), next_obs)
        return Prediction(
            next_state=next_state,
            next_obs=next_obs.masked_fill(dead[..., None], 0.0),
            reward=self.norm_reward.denormalize(reward[:, None]).squeeze(-1),
            terminated_prob=torch.sigmoid(term),
            next_avail=avail,
            uncertainty=uncertainty,
        )
