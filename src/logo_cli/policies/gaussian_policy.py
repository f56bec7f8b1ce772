"""The policy of Gaussian behaviour cloning (continuous actions): `GaussianBCPolicy`, policy file mode
"gaussian" (policies/torch_policy.py).

A per-agent AgentNet maps an agent's standardised observation to the mean (tanh, so inside [-1, 1])
and the log-std of a diagonal Gaussian over its action vector; the policy keeps the observation
statistics, so it acts on raw observations. Acting samples from the Gaussian and clips to [-1, 1];
greedy acting takes the mean. algos/gaussian_bc.py fits it, algos/online_ppo_gaussian.py trains it
online.
"""

from __future__ import annotations

import numpy as np
import torch

from logo_cli.data.transitions import Dims
from logo_cli.models.agent_net import AgentNet

# Bounds of the log-std: below, a near-deterministic Gaussian whose NLL can run off to -inf on
# repeated actions; above, std e > the whole [-1, 1] range, i.e. no information.
LOG_STD_MIN, LOG_STD_MAX = -5.0, 1.0


class GaussianBCPolicy:
    """A TeamPolicy over [B,N,Ad] float32 actions in [-1, 1]."""

    mode = "gaussian"  # the policy.pt mode it is saved under (policies/torch_policy.py)

    def __init__(self, net: AgentNet, dims: Dims, obs_mean: np.ndarray, obs_std: np.ndarray, device="cpu"):
        self.net = net.to(device).eval()
        self.dims = dims
        self.device = device
        self.obs_mean = torch.as_tensor(obs_mean, dtype=torch.float32, device=device)
        self.obs_std = torch.as_tensor(obs_std, dtype=torch.float32, device=device)
        self.hparams: dict = {}

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw obs [B,N,O] -> (mean, log-std), each [B,N,Ad]."""
        out = self.net((obs - self.obs_mean) / self.obs_std)
        mean, log_std = out.chunk(2, dim=-1)
        return torch.tanh(mean), log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray, *, greedy: bool, rng: np.random.Generator
    ) -> np.ndarray:
        mean, log_std = self.distribution(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        mean_np = mean.cpu().numpy()
        if greedy:
            return mean_np.astype(np.float32)
        noise = rng.standard_normal(mean_np.shape)
        return np.clip(mean_np + noise * np.exp(log_std.cpu().numpy()), -1.0, 1.0).astype(np.float32)
