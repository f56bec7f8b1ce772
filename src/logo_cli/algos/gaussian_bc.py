"""Gaussian behaviour cloning: the rollout policy for continuous-action datasets (MaMuJoCo).

The counterpart of algos/bc.py's masked softmax: a per-agent AgentNet (shared parameters, one-hot
agent id) maps an agent's normalised observation to the mean (tanh, so inside [-1, 1]) and the
log-std of a diagonal Gaussian over its action vector, fitted by maximum likelihood to the dataset's
actions. Observations are normalised with the dataset's statistics (MuJoCo velocities are an order
of magnitude larger than positions), which the policy keeps so that it acts on raw observations.
Acting samples from the Gaussian and clips to [-1, 1], the range the simulator accepts; greedy acting
takes the mean. Rollout trains it in memory on the fly; `logo train-policy --algo bc` on a continuous
dataset trains the same network and saves it as a policy.pt of mode "gaussian" (policies/torch_policy.py).
"""

from __future__ import annotations

import numpy as np
import torch

from logo_cli.algos.minibatch import Progress, fit_minibatches
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import AgentNet
from logo_cli.policies.gaussian_policy import GaussianBCPolicy


def obs_stats(transitions: Transitions) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the dataset's observations (over agents and steps), the
    normalisation the policy applies; the std is floored so padded (always-zero) features keep a
    finite scale."""
    obs_all = transitions.obs.reshape(-1, transitions.dims.obs_dim)
    return obs_all.mean(0), np.maximum(obs_all.std(0), 1e-3)


def gaussian_nll(policy: GaussianBCPolicy, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (up to a constant) of the data actions, per action entry."""
    mean, log_std = policy.distribution(obs)
    return (0.5 * ((actions - mean) * torch.exp(-log_std)).pow(2) + log_std).mean()


def train_gaussian_bc(
    transitions: Transitions,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    hidden: int = 128,
    layers: int = 2,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
) -> GaussianBCPolicy:
    """Fit the Gaussian BC policy with Adam; the same seed and data give the same weights (init and
    minibatches are seeded locally, the global torch RNG is left untouched)."""
    dims = transitions.dims
    if dims.discrete:
        raise LogoError(
            "Gaussian behaviour cloning: needs a continuous-action dataset (this one is discrete)"
        )
    if len(transitions) == 0:
        raise LogoError("behaviour cloning: no transitions to learn from")
    if steps < 1 or batch_size < 1:
        raise LogoError("behaviour cloning: steps and batch size must be at least 1")
    obs_mean, obs_std = obs_stats(transitions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = AgentNet(dims.obs_dim, dims.n_agents, 2 * dims.n_actions, hidden=hidden, layers=layers)
    policy = GaussianBCPolicy(net, dims, obs_mean, obs_std, device)
    obs = torch.as_tensor(transitions.obs, dtype=torch.float32, device=device)
    # the simulator clips actions to [-1, 1]: fit the action it executed
    actions = torch.as_tensor(transitions.actions, dtype=torch.float32, device=device).clamp(-1.0, 1.0)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(policy, obs[idx], actions[idx])

    fit_minibatches(net, batch_loss, len(transitions), steps, batch_size, lr, seed, device, progress)
    policy.hparams = {"hidden": hidden, "layers": layers}
    return policy
