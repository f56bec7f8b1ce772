"""The policy of the continuous-action offline learners (MA-CQL, MA-TD3+BC): `ContinuousActorPolicy`.

A tanh-Gaussian actor (MA-CQL, SAC-style) outputs the pre-tanh mean and the log-std of each action
entry; a deterministic actor (TD3+BC) outputs the pre-tanh action. The policy file saves them as mode
"tanh_gaussian" or "deterministic" (policies/torch_policy.py). Greedy acting is tanh(mean) /
tanh(output); stochastic acting samples tanh(N(mean, std)) for the tanh-Gaussian, and adds N(0, 0.1²)
noise, clipped to [-1, 1], for the deterministic actor (TD3's exploration noise). The learners that
train these actors are in algos/continuous_actor.py, algos/macql_continuous.py and algos/td3bc.py.
"""

from __future__ import annotations

import numpy as np
import torch

from logo_cli.data.transitions import Dims
from logo_cli.models.agent_net import AgentNet

# Bounds of the tanh-Gaussian's log-std (before tanh). The CQL/SAC reference code uses [-20, 2]; at
# -20 the log-prob correction and the entropy are dominated by float32 rounding, and -5 (std 0.007
# before tanh) is already far finer than any MuJoCo action needs.
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
EXPLORATION_STD = 0.1  # the deterministic actor's Gaussian exploration noise when acting stochastically
TANH_GAUSSIAN, DETERMINISTIC = "tanh_gaussian", "deterministic"


def actor_outputs(mode: str, n_actions: int) -> int:
    """Outputs per agent of an actor of this mode: mean and log-std, or the action alone."""
    return 2 * n_actions if mode == TANH_GAUSSIAN else n_actions


def split_gaussian(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A tanh-Gaussian actor's raw output [..., 2Ad] -> (pre-tanh mean, clamped log-std)."""
    mean, log_std = out.chunk(2, dim=-1)
    return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


class ContinuousActorPolicy:
    """A TeamPolicy over [B,N,Ad] float32 actions in [-1, 1] from a tanh-Gaussian or deterministic actor."""

    def __init__(self, net: AgentNet, mode: str, dims: Dims, obs_mean, obs_std, device: str = "cpu"):
        if mode not in (TANH_GAUSSIAN, DETERMINISTIC):
            raise ValueError(f"unknown continuous actor mode {mode!r}")
        self.net = net.to(device).eval()
        self.mode = mode
        self.dims = dims
        self.device = device
        self.obs_mean = torch.as_tensor(obs_mean, dtype=torch.float32, device=device)
        self.obs_std = torch.as_tensor(obs_std, dtype=torch.float32, device=device)

    def pre_tanh(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw obs [B,N,O] -> (pre-tanh mean [B,N,Ad], log-std or None for a deterministic actor)."""
        out = self.net((obs - self.obs_mean) / self.obs_std)
        if self.mode == TANH_GAUSSIAN:
            return split_gaussian(out)
        return out, None

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray, *, greedy: bool, rng: np.random.Generator
    ) -> np.ndarray:
        mean, log_std = self.pre_tanh(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        mean_np = mean.cpu().numpy().astype(np.float64)
        if greedy:
            return np.tanh(mean_np).astype(np.float32)
        noise = rng.standard_normal(mean_np.shape)
        if log_std is not None:
            return np.tanh(mean_np + noise * np.exp(log_std.cpu().numpy())).astype(np.float32)
        return np.clip(np.tanh(mean_np) + EXPLORATION_STD * noise, -1.0, 1.0).astype(np.float32)
