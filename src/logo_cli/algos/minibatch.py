"""The minibatch training loop shared by the discrete and the Gaussian behaviour cloning."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

# progress(step, total_steps, metrics) -- called every few steps and at the end.
Progress = Callable[[int, int, dict], None]


def fit_minibatches(
    net: torch.nn.Module,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    progress: Progress | None,
) -> None:
    """Adam on `batch_loss(row indices)` over `steps` uniform minibatches of `n` rows, drawn from a
    generator seeded with `seed` (the global RNGs are left untouched); reports `bc_loss` to `progress`
    about 100 times."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    report_every = max(1, steps // 100)
    net.train()
    for step in range(1, steps + 1):
        loss = batch_loss(torch.as_tensor(rng.integers(0, n, size=batch_size), device=device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None and (step % report_every == 0 or step == steps):
            progress(step, steps, {"bc_loss": float(loss.detach())})
    net.eval()
