"""A team policy backed by an AgentNet, and its checkpoint format.

One format serves every discrete policy here (the collector's behaviour policies, behaviour cloning,
MACQL): `{"format": "logo-policy", "version": 1, "mode": "logits"|"q", "dims": {...},
"hparams": {"hidden", "layers"}, "state_dict": {...}, "meta": {...}}`, plain data for
`torch.load(weights_only=True)`. A MACQL policy adds `"mixer": {...}` (MacqlNets.mixer_payload):
acting ignores it, `logo export` ships it; the format version stays 1, as older readers ignore it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from logo_cli.artifacts import load_checkpoint, save_checkpoint
from logo_cli.checks import MAX_LAYERS
from logo_cli.checks import MAX_WIDTH as MAX_HIDDEN
from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import AgentNet, masked_greedy, masked_sample

POLICY_FORMAT = "logo-policy"
POLICY_VERSION = 1  # the checkpoint format version (also written as "format_version")
Mode = Literal["logits", "q"]
MODES = ("logits", "q")
# Optional key of a MACQL policy file: its QMIX mixer, as MacqlNets.mixer_payload() writes it.
# Acting never reads it; `logo export` does.
MIXER_KEY = "mixer"


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
    net: AgentNet,
    mode: Mode,
    dims: Dims,
    hidden: int,
    layers: int,
    meta: dict | None = None,
    mixer: dict | None = None,
) -> dict:
    payload = {
        "format": POLICY_FORMAT,
        "format_version": POLICY_VERSION,
        "version": POLICY_VERSION,
        "mode": mode,
        "dims": dims.to_dict(),
        "hparams": {"hidden": hidden, "layers": layers},
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "meta": meta or {},
    }
    if mixer is not None:
        payload[MIXER_KEY] = mixer
    return payload


def save_policy(
    path: str | Path,
    net: AgentNet,
    mode: Mode,
    dims: Dims,
    hidden: int,
    layers: int,
    meta=None,
    mixer: dict | None = None,
) -> None:
    save_checkpoint(path, policy_payload(net, mode, dims, hidden, layers, meta, mixer))


def policy_from_payload(
    payload: dict, source: str, device: str = "cpu", epsilon: float = 0.0
) -> AgentNetPolicy:
    """Rebuild a policy; one-line LogoError naming `source` for another format or version, an
    unknown mode, absurd sizes (bounded, and compared with the file's tensors on the meta device
    before anything is allocated), weights that do not fit, or NaN / inf weights."""
    from logo_cli.artifacts import check_format_version, format_version
    from logo_cli.checks import check_finite_weights

    if not isinstance(payload, dict) or payload.get("format") != POLICY_FORMAT:
        raise LogoError(f"{source}: not a logo policy checkpoint")
    check_format_version(format_version(payload, "version"), POLICY_VERSION, "policy checkpoint", source)
    try:
        dims = Dims.from_dict(payload["dims"])
        hp = payload["hparams"]
        if not isinstance(hp, dict):
            raise ValueError("hparams is not an object")
        hidden, layers = hp["hidden"], hp["layers"]
        for name, v, top in (("hidden", hidden, MAX_HIDDEN), ("layers", layers, MAX_LAYERS)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
                raise ValueError(f"hparams.{name} {v!r} is not an integer in 1..{top}")
        mode = payload["mode"]
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (expected {' or '.join(MODES)})")
        state = payload["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError("state_dict is not a mapping of tensors")
    except (KeyError, TypeError, ValueError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LogoError(f"{source}: garbled policy checkpoint ({detail})") from None
    with torch.device("meta"):  # the declared network's shapes, without allocating it
        expected = AgentNet(dims.obs_dim, dims.n_agents, dims.n_actions, hidden=hidden, layers=layers)
    shapes = {k: tuple(v.shape) for k, v in expected.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != found:
        diff = sorted(set(shapes) ^ set(found)) or [k for k in shapes if shapes[k] != found[k]]
        raise LogoError(
            f"{source}: policy weights do not fit its declared dims and hparams (hidden {hidden}, layers "
            f"{layers}; first difference: {diff[0]} {list(found.get(diff[0], ()))} in the file vs "
            f"{list(shapes.get(diff[0], ()))})"
        )
    check_finite_weights(state, source)
    net = AgentNet(dims.obs_dim, dims.n_agents, dims.n_actions, hidden=hidden, layers=layers)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise LogoError(
            f"{source}: policy weights do not fit its declared dims ({str(e).splitlines()[0]})"
        ) from None
    return AgentNetPolicy(net, mode, dims, device=device, epsilon=epsilon)


def load_policy(path: str | Path, device: str = "cpu", epsilon: float = 0.0) -> AgentNetPolicy:
    """Load a policy file (a `.pt` written by save_policy)."""
    return policy_from_payload(load_checkpoint(path, device), str(path), device, epsilon)
