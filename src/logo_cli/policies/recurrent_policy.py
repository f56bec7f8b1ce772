"""A team policy backed by a GRU agent (policy file mode "recurrent_q"), with per-slot memory.

The policy keeps, for each of the B env slots it acts for, the GRU hidden state and the last joint
action (the agent's inputs besides the observation). Both start at zeros; `reset(mask)` zeroes them
for the slots whose episode just ended (stages/evaluate.py calls it on done slots, and on all slots
when the envs are reset). A call with another batch size than the previous one starts every slot
afresh. Acting: greedy = best available Q; otherwise ε-greedy (ε given at construction).

Stages that act on rows which are not successive steps of the same episodes (rollout's model
branches, export's stateless scripted agent) refuse a recurrent policy in one line.

File format: the logo-policy payload of policies/torch_policy.py (its identity in
policies/policy_file.py) with mode "recurrent_q", hparams {"hidden": GRU width, "layers": 1} and the
GRUAgent's state_dict (plus MACQL's "mixer").
"""

from __future__ import annotations

import numpy as np
import torch

from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import masked_greedy
from logo_cli.models.gru_agent import GRUAgent
from logo_cli.policies.policy_file import MIXER_KEY, POLICY_FORMAT, POLICY_VERSION

RECURRENT_MODE = "recurrent_q"


def refuse_recurrent(policy: object, what: str) -> None:
    """One-line refusal for stages that cannot drive a recurrent policy."""
    if getattr(policy, "recurrent", False):
        raise LogoError(f"{what}: a recurrent (GRU) policy needs whole episodes in order; not supported here")


class RecurrentQPolicy:
    mode = RECURRENT_MODE
    recurrent = True

    def __init__(self, net: GRUAgent, dims: Dims, device: str = "cpu", epsilon: float = 0.0):
        self.net = net.to(device).eval()
        self.dims = dims
        self.device = device
        self.epsilon = epsilon
        self._h: torch.Tensor | None = None  # [B,N,H]
        self._last: torch.Tensor | None = None  # [B,N,A] one-hot of the last actions

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Start afresh the slots where `mask` [B] is True (all slots when None)."""
        if mask is None or self._h is None:
            self._h = self._last = None
            return
        m = torch.as_tensor(np.asarray(mask, dtype=bool), device=self.device)
        if m.shape[0] != self._h.shape[0]:
            self._h = self._last = None
            return
        self._h[m] = 0.0
        assert self._last is not None
        self._last[m] = 0.0

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray, *, greedy: bool, rng: np.random.Generator
    ) -> np.ndarray:
        b = obs.shape[0]
        if self._h is None or self._h.shape[0] != b:
            self._h = self.net.initial_state(b, self.device)
            self._last = torch.zeros(b, self.dims.n_agents, self.dims.n_actions, device=self.device)
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        avail_t = torch.as_tensor(avail, dtype=torch.bool, device=self.device)
        q, self._h = self.net.step(obs_t, self._last, self._h)
        actions = masked_greedy(q, avail_t).cpu().numpy()
        if not greedy and self.epsilon > 0:
            explore = rng.random(actions.shape) < self.epsilon
            if explore.any():
                scores = rng.random(avail.shape)
                scores[~avail.astype(bool)] = -1.0
                actions = np.where(explore, scores.argmax(-1), actions)
        actions = actions.astype(np.int64)
        a = torch.as_tensor(actions, device=self.device)
        self._last = torch.nn.functional.one_hot(a, self.dims.n_actions).float()
        return actions


def recurrent_payload(net: GRUAgent, dims: Dims, meta: dict | None = None, mixer: dict | None = None) -> dict:
    payload = {
        "format": POLICY_FORMAT,
        "format_version": POLICY_VERSION,
        "version": POLICY_VERSION,
        "mode": RECURRENT_MODE,
        "dims": dims.to_dict(),
        "hparams": {"hidden": net.hidden, "layers": 1},
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "meta": meta or {},
    }
    if mixer is not None:
        payload[MIXER_KEY] = mixer
    return payload


def recurrent_from_state(
    state: dict, dims: Dims, hidden: int, layers: int, source: str, device: str = "cpu", epsilon: float = 0.0
) -> RecurrentQPolicy:
    """Rebuild a recurrent policy from a validated payload's parts; one-line LogoError for discrete
    dims missing, layers other than 1, weights that do not fit (checked on the meta device before
    allocating) or NaN / inf weights."""
    from logo_cli.checks import check_finite_weights, check_state_shapes

    if not dims.discrete:
        raise LogoError(
            f"{source}: garbled policy checkpoint (mode {RECURRENT_MODE!r} needs discrete actions)"
        )
    if layers != 1:
        raise LogoError(
            f"{source}: garbled policy checkpoint (a recurrent policy has layers 1, not {layers})"
        )
    with torch.device("meta"):
        expected = GRUAgent(dims.obs_dim, dims.n_agents, dims.n_actions, hidden=hidden)
    what = "policy weights do not fit its declared dims and hparams"
    check_state_shapes(expected.state_dict(), state, source, what, f"GRU hidden {hidden}")
    check_finite_weights(state, source)
    net = GRUAgent(dims.obs_dim, dims.n_agents, dims.n_actions, hidden=hidden)
    net.load_state_dict(state)
    return RecurrentQPolicy(net, dims, device=device, epsilon=epsilon)
