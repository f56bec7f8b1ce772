"""The `ensemble` baseline: M probabilistic global models (MOPO / OfflineRL-Kit style), K elites.

All members share one group-batched einsum per layer (DirectModel with `members = M`), and every
member is evaluated at inference too, as OfflineRL-Kit does, so its cost is the honest ensemble cost.
- Training: every member sees the same minibatch; members differ by their initialisation.
- Elites: the K members with the lowest held-out loss (`set_elites`, called by pretrain after each
  evaluation and with the best weights at the end); stored in a buffer, so they save with the weights.
- Prediction: sample=False -> the mean of the elites' means (state, obs, reward; termination and
  available-action probabilities averaged); sample=True -> per row one elite drawn uniformly, then a
  draw from that elite's Gaussians (MOPO's rollout).
- Uncertainty: disagreement, max over elites k of RMS_d((mu_k,d - mean_j mu_j,d) / std(s_d)), the
  elites' next-state means in normalised state units (RMS over dims, like LOGO's u, so the two are on
  one scale).
"""

from __future__ import annotations

import torch

from logo_cli.data.transitions import Dims
from logo_cli.models.global_model import DirectModel, _sample_gaussians


class EnsembleModel(DirectModel):
    kind = "ensemble"
    elite_idx: torch.Tensor

    def __init__(
        self,
        dims: Dims,
        hidden: int = 256,
        layers: int = 2,
        members: int = 7,
        elites: int = 5,
        noop_action: int = 0,
        clip: bool = True,
        **weights: float,
    ):
        if not 1 <= elites <= members:
            raise ValueError(f"elites {elites} must lie in 1..members ({members})")
        super().__init__(
            dims, hidden=hidden, layers=layers, members=members, noop_action=noop_action, clip=clip, **weights
        )
        self.hp.update({"members": int(members), "elites": int(elites)})
        self.register_buffer("elite_idx", torch.arange(elites))

    @torch.no_grad()
    def set_elites(self, member_loss: torch.Tensor) -> list[int]:
        """Keep the K members with the lowest held-out loss [M]; returns their indices."""
        k = self.elite_idx.shape[0]
        idx = torch.argsort(member_loss.detach().to(self.elite_idx.device))[:k].sort().values
        self.elite_idx.copy_(idx)
        return idx.tolist()

    def _combine(self, f: dict, sample: bool, generator: torch.Generator | None) -> tuple[dict, torch.Tensor]:
        elite = {k: v[:, self.elite_idx] for k, v in f.items()}  # [B,K,...]
        smeans = elite["smean"]
        dev = self.state_units(smeans - smeans.mean(1, keepdim=True))
        uncertainty = dev.pow(2).mean(-1).sqrt().amax(1)
        b, k = smeans.shape[:2]
        if sample:
            pick = torch.randint(k, (b,), generator=generator, device=smeans.device)
            rows = torch.arange(b, device=smeans.device)
            return _sample_gaussians({key: v[rows, pick] for key, v in elite.items()}, generator), uncertainty
        one = {key: v.mean(1) for key, v in elite.items() if key not in ("term", "avail")}
        # Average probabilities, not logits, then map back to logits for the shared post-processing.
        one["term"] = torch.logit(torch.sigmoid(elite["term"]).mean(1), eps=1e-6)
        one["avail"] = torch.logit(torch.sigmoid(elite["avail"]).mean(1), eps=1e-6)
        return one, uncertainty
