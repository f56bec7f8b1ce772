"""A team policy backed by an AgentNet, and its checkpoint format.

One format serves every discrete policy here (the collector's behaviour policies, behaviour cloning,
MACQL): `{"format": "logo-policy", "version": 1, "mode": "logits"|"q", "dims": {...},
"hparams": {"hidden", "layers"}, "state_dict": {...}, "meta": {...}}`, plain data for
`torch.load(weights_only=True)`. A MACQL policy adds `"mixer": {...}` (MacqlNets.mixer_payload):
acting ignores it, `logo export` ships it; the format version stays 1, as older readers ignore it.

Continuous actions (MaMuJoCo) use mode "gaussian": the AgentNet outputs 2 * action_dim values (mean
before tanh, log-std) per agent, and the payload adds `"obs_norm": {"mean", "std"}` ([obs_dim] float32
tensors), the dataset statistics the network's input is standardised with (policies/gaussian_policy.py).
Older readers refuse the unknown mode in one line, so the version stays 1 here too.

The offline continuous learners add two modes with the same payload (AgentNet + "obs_norm"):
"tanh_gaussian" (MA-CQL's SAC actor: 2 * action_dim outputs, pre-tanh mean and log-std; greedy acting
is tanh(mean), stochastic acting tanh of a Gaussian draw) and "deterministic" (MA-TD3+BC's actor:
action_dim outputs, the action is their tanh; stochastic acting adds N(0, 0.1²) noise and clips).
Note the difference from "gaussian", whose mean is already tanh-squashed and whose stochastic
acting clips a Gaussian around it (policies/actor_policy.py has the new modes' policy class).
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
from logo_cli.policies.actor_policy import ContinuousActorPolicy, actor_outputs
from logo_cli.policies.gaussian_policy import GaussianBCPolicy
from logo_cli.policies.policy_file import MIXER_KEY, POLICY_FORMAT, POLICY_VERSION
from logo_cli.policies.recurrent_policy import recurrent_from_state

Mode = Literal["logits", "q", "gaussian", "tanh_gaussian", "deterministic", "recurrent_q"]
# recurrent_q: a GRU agent with memory (policies/recurrent_policy.py)
MODES = ("logits", "q", "gaussian", "tanh_gaussian", "deterministic", "recurrent_q")
CONTINUOUS_MODE = "gaussian"  # Gaussian behaviour cloning's mode (policies/gaussian_policy.py)
# the modes over continuous actions (each with "obs_norm"); the others need discrete ones
CONTINUOUS_MODES = ("gaussian", "tanh_gaussian", "deterministic")


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


# every policy a policy file can hold
AnyPolicy = AgentNetPolicy | GaussianBCPolicy | ContinuousActorPolicy


def policy_payload(
    net: AgentNet,
    mode: Mode,
    dims: Dims,
    hidden: int,
    layers: int,
    meta: dict | None = None,
    mixer: dict | None = None,
    obs_norm: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """The checkpoint dict; `obs_norm` (mean, std) is required for the continuous modes and only there."""
    if (mode in CONTINUOUS_MODES) != (obs_norm is not None):
        raise ValueError("obs_norm goes with the continuous modes and only with them")
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
    if obs_norm is not None:
        mean, std = (torch.as_tensor(np.asarray(a), dtype=torch.float32).clone() for a in obs_norm)
        payload["obs_norm"] = {"mean": mean, "std": std}
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
    obs_norm: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    save_checkpoint(path, policy_payload(net, mode, dims, hidden, layers, meta, mixer, obs_norm))


def policy_from_payload(payload: dict, source: str, device: str = "cpu", epsilon: float = 0.0) -> AnyPolicy:
    """Rebuild a policy; one-line LogoError naming `source` for another format or version, an
    unknown mode, absurd sizes (bounded, and compared with the file's tensors on the meta device
    before anything is allocated), weights that do not fit, or NaN / inf weights."""
    from logo_cli.artifacts import check_format_version, format_version
    from logo_cli.checks import check_finite_weights, check_state_shapes

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
        if (mode in CONTINUOUS_MODES) == dims.discrete:
            kind = "discrete" if dims.discrete else "continuous"
            raise ValueError(f"mode {mode!r} does not act on {kind} actions")
        state = payload["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError("state_dict is not a mapping of tensors")
        obs_norm = _obs_norm(payload, dims) if mode in CONTINUOUS_MODES else None
    except (KeyError, TypeError, ValueError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LogoError(f"{source}: garbled policy checkpoint ({detail})") from None
    if mode == "recurrent_q":  # a GRU agent with per-slot memory (policies/recurrent_policy.py)
        return recurrent_from_state(state, dims, hidden, layers, source, device, epsilon)  # type: ignore[return-value]
    n_out = _outputs(mode, dims)
    with torch.device("meta"):  # the declared network's shapes, without allocating it
        expected = AgentNet(dims.obs_dim, dims.n_agents, n_out, hidden=hidden, layers=layers)
    what = "policy weights do not fit its declared dims and hparams"
    check_state_shapes(expected.state_dict(), state, source, what, f"hidden {hidden}, layers {layers}")
    check_finite_weights(state, source)
    net = AgentNet(dims.obs_dim, dims.n_agents, n_out, hidden=hidden, layers=layers)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise LogoError(
            f"{source}: policy weights do not fit its declared dims ({str(e).splitlines()[0]})"
        ) from None
    if mode == CONTINUOUS_MODE:
        assert obs_norm is not None
        return GaussianBCPolicy(net, dims, obs_norm[0], obs_norm[1], device)
    if obs_norm is not None:
        return ContinuousActorPolicy(net, mode, dims, obs_norm[0], obs_norm[1], device)
    return AgentNetPolicy(net, mode, dims, device=device, epsilon=epsilon)


def _outputs(mode: str, dims: Dims) -> int:
    """AgentNet outputs per agent: a Gaussian head has a mean and a log-std per action entry."""
    if mode == CONTINUOUS_MODE:
        return 2 * dims.n_actions
    if mode in CONTINUOUS_MODES:
        return actor_outputs(mode, dims.n_actions)
    return dims.n_actions


def _obs_norm(payload: dict, dims: Dims) -> tuple[torch.Tensor, torch.Tensor]:
    """A Gaussian policy's observation statistics: [obs_dim] finite tensors, std > 0 (it divides)."""
    norm = payload["obs_norm"]
    if not isinstance(norm, dict):
        raise ValueError("obs_norm is not an object")
    mean, std = norm["mean"], norm["std"]
    for name, t in (("mean", mean), ("std", std)):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (dims.obs_dim,):
            raise ValueError(f"obs_norm.{name} is not a [{dims.obs_dim}] tensor")
        if not torch.isfinite(t).all():
            raise ValueError(f"obs_norm.{name} has NaN or inf values")
    if not (std > 0).all():
        raise ValueError("obs_norm.std has a value <= 0")
    return mean.float(), std.float()


def load_policy(path: str | Path, device: str = "cpu", epsilon: float = 0.0) -> AnyPolicy:
    """Load a policy file (a `.pt` written by save_policy)."""
    return policy_from_payload(load_checkpoint(path, device), str(path), device, epsilon)
