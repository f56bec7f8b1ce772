"""A team policy backed by an AgentNet, and its checkpoint format.

One format serves every discrete policy here (the collector's behaviour policies, behaviour cloning,
MACQL): `{"format": "logo-policy", "version": 1, "mode": "logits"|"q", "dims": {...},
"hparams": {"hidden", "layers"}, "state_dict": {...}, "meta": {...}}`, plain data for
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from logo_cli.artifacts import load_checkpoint, save_checkpoint
from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import AgentNet, masked_greedy, masked_sample

POLICY_FORMAT = "logo-policy"
POLICY_VERSION = 1
Mode = Literal["logits", "q"]


class AgentNetPolicy:
    """Acts with an AgentNet: greedy = best available action; otherwise sample.

    mode "logits": sample from the softmax over available actions.
    mode "q": epsilon-greedy over available actions (epsilon given at construction).
    """

    def __init__(self, net: AgentNet, mode: Mode, dims: Dims, device: str = "cpu", epsilon: float = 0.0):
        self.net = net.to(device).eval()
        self.mode = mode
        self.dims = dims
        self.device = device
        self.epsilon = epsilon

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray, *, greedy: bool, rng: np.random.Generator
    ) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        avail_t = torch.as_tensor(avail, dtype=torch.bool, device=self.device)
        out = self.net(obs_t)
        if greedy:
            return masked_greedy(out, avail_t).cpu().numpy()
        if self.mode == "logits":
            gen = torch.Generator(device=self.device).manual_seed(int(rng.integers(2**62)))
            return masked_sample(out, avail_t, gen).cpu().numpy()
        actions = masked_greedy(out, avail_t).cpu().numpy()
        explore = rng.random(actions.shape) < self.epsilon
        if explore.any():
            scores = rng.random(avail.shape)
            scores[~avail.astype(bool)] = -1.0
            actions = np.where(explore, scores.argmax(-1), actions)
        return actions.astype(np.int64)


def policy_payload(
    net: AgentNet, mode: Mode, dims: Dims, hidden: int, layers: int, meta: dict | None = None
) -> dict:
    return {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "mode": mode,
        "dims": dims.to_dict(),
        "hparams": {"hidden": hidden, "layers": layers},
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "meta": meta or {},
    }


def save_policy(
    path: str | Path, net: AgentNet, mode: Mode, dims: Dims, hidden: int, layers: int, meta=None
) -> None:
    save_checkpoint(path, policy_payload(net, mode, dims, hidden, layers, meta))


def policy_from_payload(
    payload: dict, source: str, device: str = "cpu", epsilon: float = 0.0
) -> AgentNetPolicy:
    if not isinstance(payload, dict) or payload.get("format") != POLICY_FORMAT:
        raise LogoError(f"{source}: not a logo policy checkpoint")
    if payload.get("version") != POLICY_VERSION:
        raise LogoError(f"{source}: policy format version {payload.get('version')} is not {POLICY_VERSION}")
    dims = Dims.from_dict(payload["dims"])
    hp = payload["hparams"]
    net = AgentNet(
        dims.obs_dim, dims.n_agents, dims.n_actions, hidden=int(hp["hidden"]), layers=int(hp["layers"])
    )
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise LogoError(
            f"{source}: policy weights do not fit its declared dims ({str(e).splitlines()[0]})"
        ) from None
    return AgentNetPolicy(net, payload["mode"], dims, device=device, epsilon=epsilon)


def load_policy(path: str | Path, device: str = "cpu", epsilon: float = 0.0) -> AgentNetPolicy:
    """Load a policy file (a `.pt` written by save_policy)."""
    return policy_from_payload(load_checkpoint(path, device), str(path), device, epsilon)
