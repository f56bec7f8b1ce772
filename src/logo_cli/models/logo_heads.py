"""Two optional heads of the LOGO model that make a predicted observation look like a real one.

- `SwitchGates`: the switching groups of an observation (another unit's block, all zero when it is
  out of view or dead; models/switch_groups.py) are predicted as switches. The local decoder gives a
  "present" logit per feature; a group's logit is the mean over its features. Its values are learned
  only where the group is present next step, so a unit that dies or leaves view no longer pulls the
  mean towards zero, and a rollout samples the switch (Bernoulli) instead of averaging two outcomes.
- `ObsAvailHead`: the next available actions read from the agent's own next observation (one network
  shared by the agents, with an agent id), so they agree with it: an enemy an agent may attack is one
  its observation shows alive and in range.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from logo_cli.choices import AvailFrom, values
from logo_cli.models.layers import BatchedLinear, BatchedMLP
from logo_cli.models.switch_groups import switch_groups

AVAIL_FROM = values(AvailFrom)


class SwitchGates(nn.Module):
    """The feature -> group map (a buffer: -1 for features in no group) and the gate arithmetic."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("feature_group", torch.full((obs_dim,), -1, dtype=torch.long))

    @torch.no_grad()
    def fit(self, obs: torch.Tensor) -> None:
        """Find the groups from training observations [..., O]."""
        groups = switch_groups(obs.detach().cpu().numpy())
        fg = torch.full_like(self.feature_group, -1)
        for i, g in enumerate(groups):
            fg[torch.as_tensor(g, dtype=torch.long)] = i
        self.feature_group.copy_(fg)

    @property
    def grouped(self) -> torch.Tensor:
        return self.feature_group >= 0

    def presence(self, obs: torch.Tensor) -> torch.Tensor:
        """[..., O] -> [..., O] float: 1 where the feature's group has any non-zero feature (features
        in no group: 1)."""
        nonzero = (obs != 0).to(obs.dtype)
        return self._spread(nonzero, reduce="amax")

    def group_logits(self, feature_logits: torch.Tensor) -> torch.Tensor:
        """Per-feature logits -> each feature holds its group's mean logit."""
        return self._spread(feature_logits, reduce="mean")

    def _spread(self, x: torch.Tensor, reduce: str) -> torch.Tensor:
        """Reduce x over each group's features and write the result back to every feature of the
        group; features in no group get 1 (present) for amax, their own value for mean.

        Both reductions are two thin matrix products with the feature -> group membership matrix
        [O,G] (`amax` is only ever taken of 0/1 presence, where "any" is a positive sum). The
        scatters into a [B,N,O] buffer they replace took about a sixth of a training step at 27
        agents."""
        member = self._membership(x.dtype)
        pooled = x @ member
        if reduce == "amax":
            pooled = (pooled > 0).to(x.dtype)
        else:
            pooled = pooled / member.sum(0).clamp(min=1.0)
        back = pooled @ member.T
        keep = torch.ones_like(x) if reduce == "amax" else x
        return torch.where(self.grouped, back, keep)

    def _membership(self, dtype: torch.dtype) -> torch.Tensor:
        """[O,G]: 1 where feature o is in group g (rebuilt per call: the groups change on `fit` and
        on loading a checkpoint, and the matrix is small, O x G)."""
        fg = self.feature_group  # -1 for features in no group: their row is zeroed below
        member = F.one_hot(fg.clamp(min=0), max(int(fg.max()) + 1, 1)).to(dtype)
        return member * self.grouped[:, None].to(dtype)

    def loss(self, feature_logits: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """BCE of the group logits against presence in the true next observation."""
        if not bool(self.grouped.any()):
            return feature_logits.sum() * 0.0
        logits = self.group_logits(feature_logits)[..., self.grouped]
        return F.binary_cross_entropy_with_logits(logits, self.presence(next_obs)[..., self.grouped])

    def draw(
        self, feature_logits: torch.Tensor, sample: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        """[..., O] bool: present (True) or absent, one draw per group (the most likely outcome
        when not `sample`); features in no group are always present."""
        logits = self.group_logits(feature_logits)
        if sample:
            u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
            # one uniform per group: every feature reads its group's first feature's draw
            u = u.gather(-1, self._first_of_group().expand_as(u))
            present = u < torch.sigmoid(logits)
        else:
            present = logits > 0
        return present | ~self.grouped

    def _first_of_group(self) -> torch.Tensor:
        fg = self.feature_group
        same = (fg[:, None] == fg[None, :]) & (fg[:, None] >= 0)
        first = same.to(torch.int8).argmax(-1)  # the first True; a feature in no group: itself
        return torch.where(fg >= 0, first, torch.arange(len(fg), device=fg.device))


class ObsAvailHead(nn.Module):
    """Normalised observation [B,N,O] -> available-action logits [B,N,A]; shared by the agents.

    `embed`: the input first goes through a linear map to `embed` numbers (a low-rank first layer,
    the pooled LOGO layout's: its cost per agent then grows with the observation by `embed`, not by
    `hidden`)."""

    def __init__(
        self, n_agents: int, obs_dim: int, n_actions: int, hidden: int, layers: int, embed: int | None = None
    ):
        super().__init__()
        self.n_agents = n_agents
        self.proj = BatchedLinear(1, obs_dim + n_agents, embed) if embed else None
        self.net = BatchedMLP(1, embed or obs_dim + n_agents, hidden, layers, n_actions)

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        parts = [obs_n, None]  # the observation and the agent id (BatchedLinear.forward_parts)
        if self.proj is None:
            return self.net.forward_parts(parts)
        return self.net(self.proj.forward_parts(parts))


def beta_nll(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    beta: float = 0.0,
) -> torch.Tensor:
    """Gaussian NLL (no constant) averaged over the elements where `mask` is 1 (all without one).

    With `beta` > 0 each element is weighted by its predicted variance ** beta (not differentiated):
    beta-NLL (Seitzer et al., 2022). Plain NLL divides the mean's gradient by the variance, so a
    feature the model finds hard early (a teammate's last move: exact given the joint action, but
    learned late) gets a large variance and then barely any gradient on its mean; beta = 1 gives the
    mean the gradient of a squared error."""
    nll = 0.5 * (((target - mean) ** 2) * torch.exp(-logvar) + logvar)
    if beta > 0:
        nll = nll * torch.exp(beta * logvar.detach())
    if mask is None:
        return nll.mean()
    return (nll * mask).sum() / mask.sum().clamp(min=1.0)


def group_count(gates: SwitchGates) -> int:
    fg = gates.feature_group.cpu().numpy()
    return int(len(np.unique(fg[fg >= 0])))
