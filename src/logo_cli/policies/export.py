"""TorchScript versions of a trained policy (and a MACQL run's mixer) that run without logo-cli.

The modules here are written for `torch.jit.script`: they hold the same layers under the same
parameter names as AgentNet / QMixer (so a state_dict loads as it is) but take only fixed-rank
inputs and check their shapes themselves, since the person calling them has no logo-cli to catch a
mistake. A saved module carries its description (`EXPORT_META_FILE`, JSON) inside the TorchScript
archive, read with `torch.jit.load(path, _extra_files={"logo_export.json": ""})`.

Signatures of the exported modules (all tensors on the CPU unless moved with `.to(device)`):
  agent:  forward(obs [B,N,O] float, avail [B,N,A] bool/int or None) -> (values [B,N,A] float32,
          actions [B,N] int64), where actions = argmax of values over available actions;
          values(obs) -> [B,N,A]; act(obs, avail) -> [B,N].
  mixer:  forward(q [B,N] float, state [B,S] float) -> Q_tot [B] (the state is standardised inside).
  continuous agent (policy modes "gaussian", "tanh_gaussian", "deterministic"): forward(obs [B,N,O]
          float) -> actions [B,N,Ad] float32 in [-1, 1], the policy's deterministic action tanh(mean)
          (observations standardised inside with the training data's statistics); raw(obs) -> the
          network's outputs before tanh ([B,N,2Ad] mean and log-std, or [B,N,Ad]).
"""

# No `from __future__ import annotations` here: TorchScript reads the annotations of the scripted
# classes at runtime, and cannot resolve them from strings.

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from logo_cli.checks import MAX_WIDTH, check_finite_weights, check_state_shapes
from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import mlp
from logo_cli.models.mixer import QMixer
from logo_cli.policies.torch_policy import MIXER_KEY, AgentNetPolicy

EXPORT_FORMAT = "logo-export"
EXPORT_VERSION = 1
EXPORT_META_FILE = "logo_export.json"  # the name of the description inside each TorchScript archive


def _check_obs(obs: Tensor, n_agents: int, obs_dim: int) -> None:
    if obs.dim() != 3 or obs.size(1) != n_agents or obs.size(2) != obs_dim:
        shape = "[B, " + str(n_agents) + ", " + str(obs_dim) + "]"
        raise ValueError("obs must be " + shape + ", got " + str(obs.shape))


def _with_agent_ids(x: Tensor, n_agents: int) -> Tensor:
    """x [B,N,F] -> [B,N,F+N]: agent i's row gets the one-hot id e_i appended (agents share weights
    and differ by id)."""
    ids = torch.eye(n_agents, dtype=x.dtype, device=x.device)
    return torch.cat([x, ids.unsqueeze(0).expand(x.size(0), n_agents, n_agents)], dim=-1)


class ScriptedAgent(nn.Module):
    """AgentNet for TorchScript: shared per-agent MLP over [obs, one-hot agent id]."""

    n_agents: int
    obs_dim: int
    n_actions: int

    def __init__(self, obs_dim: int, n_agents: int, n_actions: int, hidden: int, layers: int):
        super().__init__()
        self.n_agents, self.obs_dim, self.n_actions = n_agents, obs_dim, n_actions
        self.net = mlp(obs_dim + n_agents, hidden, layers, n_actions)

    @torch.jit.export
    def values(self, obs: Tensor) -> Tensor:
        """obs [B,N,O] -> one value per action [B,N,A] (Q-values or logits)."""
        _check_obs(obs, self.n_agents, self.obs_dim)
        return self.net(_with_agent_ids(obs.to(torch.float32), self.n_agents))

    @torch.jit.export
    def greedy(self, values: Tensor, avail: Tensor | None = None) -> Tensor:
        """argmax over available actions (all actions when avail is None); ties: the lowest index.
        An agent with no available action gets action 0."""
        if avail is None:
            return values.argmax(dim=-1)
        if avail.shape != values.shape:
            raise ValueError("avail must be " + str(values.shape) + ", got " + str(avail.shape))
        return values.masked_fill(avail == 0, float("-inf")).argmax(dim=-1)

    @torch.jit.export
    def act(self, obs: Tensor, avail: Tensor | None = None) -> Tensor:
        """obs [B,N,O], avail [B,N,A] or None -> greedy actions [B,N] int64."""
        return self.greedy(self.values(obs), avail)

    def forward(self, obs: Tensor, avail: Tensor | None = None) -> tuple[Tensor, Tensor]:
        values = self.values(obs)
        return values, self.greedy(values, avail)


class ScriptedContinuousAgent(nn.Module):
    """A continuous policy's AgentNet for TorchScript, with its observation standardisation: the
    deterministic action tanh of the first Ad outputs (the mean of a Gaussian head)."""

    n_agents: int
    obs_dim: int
    n_actions: int

    def __init__(self, obs_dim: int, n_agents: int, n_actions: int, n_out: int, hidden: int, layers: int):
        super().__init__()
        self.n_agents, self.obs_dim, self.n_actions = n_agents, obs_dim, n_actions
        self.net = mlp(obs_dim + n_agents, hidden, layers, n_out)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    @torch.jit.export
    def raw(self, obs: Tensor) -> Tensor:
        """obs [B,N,O] raw -> the network's outputs before tanh."""
        _check_obs(obs, self.n_agents, self.obs_dim)
        x = (obs.to(torch.float32) - self.obs_mean) / self.obs_std
        return self.net(_with_agent_ids(x, self.n_agents))

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.raw(obs)[:, :, : self.n_actions])


def script_for_inference(module: nn.Module) -> torch.jit.ScriptModule:
    """`module` scripted for inference: eval mode, and parameters that need no gradient, so the
    exported module's outputs do not track gradients (and build no autograd graph)."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return torch.jit.script(module)


def script_continuous_agent(policy) -> torch.jit.ScriptModule:
    """A continuous policy (GaussianBCPolicy or ContinuousActorPolicy) as a TorchScript module."""
    net, dims = policy.net, policy.dims
    linears = [m for m in net.net if isinstance(m, nn.Linear)]
    hidden, layers = linears[0].out_features, len(linears) - 1
    module = ScriptedContinuousAgent(
        dims.obs_dim, dims.n_agents, dims.n_actions, linears[-1].out_features, hidden, layers
    )
    module.net.load_state_dict(net.net.state_dict())
    module.obs_mean.copy_(policy.obs_mean.detach().cpu())
    module.obs_std.copy_(policy.obs_std.detach().cpu())
    return script_for_inference(module)


class ScriptedMixer(nn.Module):
    """QMixer for TorchScript on one joint action per state, with the run's state standardisation:
    Q_tot = |W2(s')|ᵀ elu(|W1(s')|ᵀ q + b1(s')) + V(s'), s' = (s − mean) / std."""

    n_agents: int
    state_dim: int
    embed: int

    def __init__(self, n_agents: int, state_dim: int, embed: int, hypernet_embed: int):
        super().__init__()
        self.n_agents, self.state_dim, self.embed = n_agents, state_dim, embed
        # The same submodules (and so the same state_dict keys) as QMixer.
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, n_agents * embed)
        )
        self.hyper_b1 = nn.Linear(state_dim, embed)
        self.hyper_w2 = nn.Sequential(
            nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, embed)
        )
        self.hyper_v = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))

    def forward(self, q: Tensor, state: Tensor) -> Tensor:
        """q [B,N] (each agent's value of its chosen action), state [B,S] raw -> Q_tot [B]."""
        if q.dim() != 2 or q.size(1) != self.n_agents:
            raise ValueError("q must be [B, " + str(self.n_agents) + "], got " + str(q.shape))
        if state.dim() != 2 or state.size(0) != q.size(0) or state.size(1) != self.state_dim:
            raise ValueError(
                "state must be [" + str(q.size(0)) + ", " + str(self.state_dim) + "], got " + str(state.shape)
            )
        s = (state.to(torch.float32) - self.state_mean) / self.state_std
        b = s.size(0)
        w1 = self.hyper_w1(s).abs().view(b, self.n_agents, self.embed)
        b1 = self.hyper_b1(s).unsqueeze(1)
        w2 = self.hyper_w2(s).abs().unsqueeze(-1)
        hidden = F.elu(torch.bmm(q.to(torch.float32).unsqueeze(1), w1) + b1)  # [B,1,E]
        return torch.bmm(hidden, w2).view(b) + self.hyper_v(s).view(b)


def script_agent(policy: AgentNetPolicy) -> torch.jit.ScriptModule:
    """The policy's network as a TorchScript module (CPU, eval mode)."""
    from logo_cli.policies.recurrent_policy import refuse_recurrent

    refuse_recurrent(policy, "export")
    net = policy.net
    dims = policy.dims
    linears = [m for m in net.net if isinstance(m, nn.Linear)]
    hidden, layers = linears[0].out_features, len(linears) - 1
    module = ScriptedAgent(dims.obs_dim, dims.n_agents, dims.n_actions, hidden, layers)
    module.net.load_state_dict(net.net.state_dict())
    return script_for_inference(module)


def mixer_from_payload(payload: dict, dims: Dims, source: str) -> ScriptedMixer | None:
    """The MACQL mixer stored in a policy file (None when the file has none), checked like the agent:
    sizes bounded, tensor shapes compared with the declared ones on the meta device before anything
    is allocated, every value finite, std > 0."""
    if MIXER_KEY not in payload:
        return None
    spec = payload[MIXER_KEY]
    try:
        if not isinstance(spec, dict):
            raise ValueError("not an object")
        embed, hyper = spec["embed"], spec["hypernet_embed"]
        for name, v in (("embed", embed), ("hypernet_embed", hyper)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_WIDTH:
                raise ValueError(f"{name} {v!r} is not an integer in 1..{MAX_WIDTH}")
        state = spec["state_dict"]
        mean, std = spec["state_mean"], spec["state_std"]
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ValueError("state_dict is not a mapping of tensors")
        for name, v in (("state_mean", mean), ("state_std", std)):
            if not isinstance(v, Tensor) or tuple(v.shape) != (dims.state_dim,):
                raise ValueError(f"{name} is not a tensor of shape [{dims.state_dim}]")
    except (KeyError, TypeError, ValueError) as e:
        raise LogoError(f"{source}: garbled mixer in the policy checkpoint ({e})") from None
    with torch.device("meta"):
        expected = QMixer(dims.n_agents, dims.state_dim, embed=embed, hypernet_embed=hyper)
    check_state_shapes(expected.state_dict(), state, source, "mixer weights do not fit the policy's dims")
    check_finite_weights({**state, "state_mean": mean, "state_std": std}, source)
    if not bool((std > 0).all()):
        raise LogoError(f"{source}: mixer state_std has a value <= 0")
    module = ScriptedMixer(dims.n_agents, dims.state_dim, embed, hyper)
    module.load_state_dict({**state, "state_mean": mean.float(), "state_std": std.float()})
    return module.eval()


def continuous_export_meta(policy, source_meta: dict | None = None) -> dict:
    """export_meta for a continuous policy (modes gaussian, tanh_gaussian, deterministic)."""
    d = policy.dims
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "mode": policy.mode,
        "actions": "continuous: [B,N,Ad] float32 in [-1, 1], the deterministic (greedy) action tanh(mean)",
        "n_agents": d.n_agents,
        "obs_dim": d.obs_dim,
        "n_actions": d.n_actions,
        "state_dim": d.state_dim,
        "agent_input": (
            "obs [B,N,O] float32 raw, agents in the dataset's order; the module standardises it with "
            "the training data's mean and std and appends agent i's one-hot id"
        ),
        "agent_signature": "forward(obs) -> actions [B,N,Ad] float32; raw(obs) -> outputs before tanh",
        "mixer": None,
        "source": source_meta or {},
    }


def export_meta(policy: AgentNetPolicy, has_mixer: bool, source_meta: dict | None = None) -> dict:
    """What a user of the exported files needs to feed them (stored inside each archive and beside)."""
    from logo_cli.policies.recurrent_policy import refuse_recurrent

    refuse_recurrent(policy, "export")  # the scripted agent is stateless
    d = policy.dims
    greedy_rule = (
        "each agent's action is the argmax of its values over the actions whose avail entry is nonzero "
        "(all actions when avail is None); ties go to the lowest index; an agent with no available "
        "action gets 0"
    )
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "mode": policy.mode,
        "values": "Q-values" if policy.mode == "q" else "logits (softmax over available actions = policy)",
        "n_agents": d.n_agents,
        "obs_dim": d.obs_dim,
        "n_actions": d.n_actions,
        "state_dim": d.state_dim,
        "agent_input": (
            "obs [B,N,O] float32, agents in the dataset's order; the module appends agent i's one-hot "
            "id (length N, 1 at position i) to its observation, so the caller passes observations only"
        ),
        "avail_masking": "applied when avail [B,N,A] (bool or 0/1) is passed; None means all available",
        "greedy_rule": greedy_rule,
        "agent_signature": "forward(obs, avail=None) -> (values [B,N,A] float32, actions [B,N] int64)",
        "mixer": (
            "forward(q [B,N], state [B,S]) -> Q_tot [B]; q = each agent's value of its chosen action, "
            "state raw (standardised inside with the training data's mean and std)"
            if has_mixer
            else None
        ),
        "source": source_meta or {},
    }
