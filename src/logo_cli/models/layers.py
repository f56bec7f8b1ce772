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

    def forward_parts(self, parts: list[torch.Tensor | None], cols: int | None = None) -> torch.Tensor:
        """This layer on `torch.cat(parts, -1)`, without building that input: each part meets its own
        rows of the weight. A part is [..., N, k] (a value per agent), [..., 1, k] (one value every
        agent shares: the state, the joint action) or None, the agent-id one-hot [N], which only
        selects weight rows. N is the number of agents (the group count when G > 1). The same sums
        as on the concatenation, without writing the shared parts N times or the ids at all: at 27
        agents the concatenations took about as long as the matrix products behind them."""
        w, b = (self.weight, self.bias) if cols is None else (self.weight[..., :cols], self.bias[..., :cols])
        n = self.groups if self.groups > 1 else max(p.shape[-2] for p in parts if p is not None)
        out, off = None, 0
        for part in parts:
            if part is None:
                rows = torch.arange(n, device=w.device)
                term = w[0, off + rows] if self.groups == 1 else w[rows, off + rows]  # [N, out]
                off += n
            else:
                k = part.shape[-1]
                ws = w[:, off : off + k]
                if self.groups == 1:
                    term = part @ ws[0]
                elif part.shape[-2] == 1:  # shared by the agents, each agent's own weights
                    term = torch.einsum("...i,gio->...go", part.squeeze(-2), ws)
                else:
                    term = torch.einsum("...gi,gio->...go", part, ws)
                off += k
            out = term if out is None else out + term
        if off != self.in_dim:
            raise ValueError(f"parts hold {off} input features; the layer takes {self.in_dim}")
        return out + b

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

    def forward_parts(self, parts: list[torch.Tensor | None], cols: int | None = None) -> torch.Tensor:
        """`self(torch.cat(parts, -1))` with the first layer fed its parts (BatchedLinear.forward_parts)."""
        first, *rest = self.linears
        x = first.forward_parts(parts, cols if not rest else None)
        for i, lin in enumerate(rest):
            x = lin(F.silu(x), cols if i == len(rest) - 1 else None)
        return x


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Bound a log-variance smoothly (PETS-style) so the Gaussian NLL cannot collapse or explode."""
    x = high - F.softplus(high - x)
    return low + F.softplus(x - low)


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-element Gaussian negative log-likelihood without the constant, averaged over everything."""
    return 0.5 * (((target - mean) ** 2) * torch.exp(-logvar) + logvar).mean()


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
