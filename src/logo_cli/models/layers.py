"""Group-batched layers: G independent linear maps evaluated with one einsum.

The same layer serves LOGO's per-agent local models (G = agents) and the ensemble baseline
(G = members), so neither pays a Python loop over groups. G = 1 with a shared input falls back to a
plain matmul, which is what the shared-local variant and the single-network models use.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BatchedLinear(nn.Module):
    """x [..., G, in] -> [..., G, out] with weight [G, in, out] and bias [G, out].

    With G == 1 the group axis may be absent (x [..., in] -> [..., out]); any leading axes are kept.
    Each group is initialised like its own nn.Linear (uniform in ±1/sqrt(in)).
    """

    def __init__(self, groups: int, in_dim: int, out_dim: int):
        super().__init__()
        self.groups, self.in_dim, self.out_dim = groups, in_dim, out_dim
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(groups, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, cols: int | None = None) -> torch.Tensor:
        """`cols`: compute only the first `cols` outputs (inference skips heads it does not need)."""
        w, b = (self.weight, self.bias) if cols is None else (self.weight[..., :cols], self.bias[..., :cols])
        if self.groups == 1 and (x.dim() < 2 or x.shape[-2] != 1):
            # A shared network: every row (and every agent row) uses the same weights.
            return x @ w[0] + b[0]
        return torch.einsum("...gi,gio->...go", x, w) + b

    def extra_repr(self) -> str:
        return f"groups={self.groups}, in_dim={self.in_dim}, out_dim={self.out_dim}"


class BatchedMLP(nn.Module):
    """`layers` hidden layers of width `hidden` (SiLU), then a linear output; all group-batched."""

    def __init__(self, groups: int, in_dim: int, hidden: int, layers: int, out_dim: int):
        super().__init__()
        dims = [in_dim] + [hidden] * layers + [out_dim]
        self.linears = nn.ModuleList(
            BatchedLinear(groups, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )

    def forward(self, x: torch.Tensor, cols: int | None = None) -> torch.Tensor:
        """`cols`: only the first `cols` outputs of the last layer."""
        for lin in self.linears[:-1]:
            x = F.silu(lin(x))
        return self.linears[-1](x, cols)


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Bound a log-variance smoothly (PETS-style) so the Gaussian NLL cannot collapse or explode."""
    x = high - F.softplus(high - x)
    return low + F.softplus(x - low)


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-element Gaussian negative log-likelihood without the constant, averaged over everything."""
    return 0.5 * (((target - mean) ** 2) * torch.exp(-logvar) + logvar).mean()


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
