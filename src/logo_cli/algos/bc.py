"""Behaviour cloning: a per-agent softmax policy fitted to the dataset's actions.

Used as the first rollout policy (docs/method.md decision 7) and as a baseline in its own right.
The policy is an AgentNet in "logits" mode (shared parameters, one-hot agent id), trained with a
cross-entropy restricted to each agent's available actions: unavailable actions get no probability
mass, so the network never spends capacity on actions the environment forbids, and a policy that
samples from it never picks one.
"""

from __future__ import annotations

import torch

from logo_cli.algos.minibatch import Progress, fit_minibatches
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import AgentNet
from logo_cli.policies.torch_policy import AgentNetPolicy

# A finite "minus infinity": a row whose actions are all masked (zero padding) then stays finite
# instead of turning the whole loss into NaN; such rows are excluded from the mean anyway.
_MASKED = -1e9


def masked_log_probs(logits: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """log softmax over available actions only. logits [...,A], avail [...,A] bool."""
    return torch.log_softmax(logits.masked_fill(~avail, _MASKED), dim=-1)


def bc_loss(net: AgentNet, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean negative log-likelihood of the data actions under the masked softmax.

    batch: "obs" [B,N,O] float, "actions" [B,N] int64, "avail_actions" [B,N,A] bool (as produced by
    Transitions.to_torch). Agent-steps whose data action is itself marked unavailable (corrupt or
    padded rows) are left out of the mean rather than given an infinite loss.
    """
    logp = masked_log_probs(net(batch["obs"]), batch["avail_actions"])
    act = batch["actions"].unsqueeze(-1)
    nll = -logp.gather(-1, act).squeeze(-1)
    valid = batch["avail_actions"].gather(-1, act).squeeze(-1).to(nll.dtype)
    return (nll * valid).sum() / valid.sum().clamp(min=1.0)


@torch.no_grad()
def bc_accuracy(net: AgentNet, batch: dict[str, torch.Tensor]) -> float:
    """Fraction of agent-steps where the greedy available action equals the data action."""
    logits = net(batch["obs"]).masked_fill(~batch["avail_actions"], _MASKED)
    return float((logits.argmax(-1) == batch["actions"]).float().mean())


def train_bc(
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
) -> AgentNetPolicy:
    """Fit a BC policy on `transitions` with Adam; returns an AgentNetPolicy in "logits" mode.

    The same seed and data give the same weights (network init and minibatches are seeded locally;
    the global torch RNG is left untouched). The returned policy keeps `hidden`/`layers` in
    `policy.hparams` so callers can save it with policies.torch_policy.save_policy.
    """
    dims = transitions.dims
    if not dims.discrete:
        raise LogoError("behaviour cloning: needs a discrete-action dataset (this one is continuous)")
    if len(transitions) == 0:
        raise LogoError("behaviour cloning: no transitions to learn from")
    if steps < 1 or batch_size < 1:
        raise LogoError("behaviour cloning: steps and batch size must be at least 1")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = AgentNet(dims.obs_dim, dims.n_agents, dims.n_actions, hidden=hidden, layers=layers).to(device)
    data = transitions.to_torch(device)
    batch_keys = ("obs", "actions", "avail_actions")

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return bc_loss(net, {k: data[k][idx] for k in batch_keys})

    fit_minibatches(net, batch_loss, len(transitions), steps, batch_size, lr, seed, device, progress)
    policy = AgentNetPolicy(net, "logits", dims, device=device)
    policy.hparams = {"hidden": hidden, "layers": layers}
    return policy
