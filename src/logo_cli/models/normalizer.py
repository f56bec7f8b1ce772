"""Per-feature mean/std normalisation whose statistics live in buffers (they save in state_dict)."""

from __future__ import annotations

import torch
from torch import nn

# A feature whose spread is below this is treated as constant (std 1): padding, ids, dead slots.
_CONSTANT = 1e-6
# Floor for near-constant features, so a tiny spread cannot blow normalised values up.
_MIN_STD = 1e-3


class Normalizer(nn.Module):
    """(x - mean) / std over the last axis; statistics are fitted once from training data."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Fit from x [..., dim] (all leading axes are pooled)."""
        flat = x.reshape(-1, self.mean.shape[0]).to(torch.float64)
        mean = flat.mean(0)
        std = flat.std(0, unbiased=False) if flat.shape[0] > 1 else torch.zeros_like(mean)
        std = torch.where(std < _CONSTANT, torch.ones_like(std), std.clamp_min(_MIN_STD))
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def stats(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}
