"""What a train-policy learner is, and the parts most learners share.

A learner is built from the dataset's dims, the real transitions (for normalisation statistics) and the
run's options (the train-policy config, read by field name); it owns its networks, optimiser(s) and
the torch generator of its update's randomness, makes one gradient step per `update(batch, step)`,
and says how the team acts (`policy`, `payload`, `save_policy`). Everything else a run needs (the
sampler, rollouts, evaluation, checkpoint files) is the stage's and the loop's. Its learned state is
`state_dict()`: what the train-policy checkpoint holds under "nets", "optimiser" and "cql_generator".
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from logo_cli.data.sampler import MixedSampler
from logo_cli.data.transitions import Dims, Transitions
from logo_cli.policies.torch_policy import AgentNetPolicy, Mode, policy_payload, save_policy

# The run's options: the train-policy config (a frozen dataclass), read by field name.
Options = Any
# progress(phase, done, total, info), as the train-policy stage's.
Progress = Callable[[str, int, int, dict], None]
# Defaults of the options whose value depends on the learner, for the discrete learners (and Gaussian
# BC); the continuous actor-critics give their own (their references').
DISCRETE_DEFAULTS = {"lr": 5e-4, "cql_samples": 32, "target_update_every": 200, "target_tau": 1.0}


class Learner(abc.ABC):
    """Base of the train-policy learners; a subclass builds its networks (`build`) and steps them
    (`update`)."""

    n_step: ClassVar[bool] = False  # the sampler adds n-step TD targets to its batches
    prepare_timer: ClassVar[str | None] = None  # the manifest's timer of `prepare` (None: none kept)
    mode: Mode = "logits"  # the policy file's mode
    obs_norm: tuple[np.ndarray, np.ndarray] | None = None  # (mean, std) of observations, continuous

    def __init__(self, dims: Dims, real: Transitions, opts: Options):
        self.dims, self.opts = dims, opts
        assert opts.lr is not None and opts.target_tau is not None and opts.target_update_every is not None
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(opts.seed)
            self.nets: nn.Module = self.build(real)
        self.nets.to(opts.device)
        self.opt: Any = self.optimiser()
        self.gen = torch.Generator(device=opts.device).manual_seed(opts.seed + 1)

    @classmethod
    def defaults(cls, opts: Options) -> dict[str, Any]:
        """The values of the options left None that this learner fills in (stage's `resolve`)."""
        return dict(DISCRETE_DEFAULTS)

    @abc.abstractmethod
    def build(self, real: Transitions) -> nn.Module:
        """The learner's networks, built from the dims, the real data and the run's options."""

    def optimiser(self) -> Any:
        return torch.optim.Adam(self.nets.parameters(), lr=self.opts.lr)

    @abc.abstractmethod
    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """One gradient step on `batch`; returns the losses to log."""

    def prepare(self, real: Transitions, progress: Progress | None) -> None:
        """Work before the first step of a fresh run (a resumed run has its result in the checkpoint)."""
        return  # most learners have none (CFCQL trains its behaviour net here)

    def batches(self, sampler: MixedSampler) -> Callable[[], dict[str, torch.Tensor]]:
        """The batch of each step, drawn from the run's sampler."""
        size = self.opts.batch_size
        return lambda: sampler.sample(size)

    # --- how the team acts -------------------------------------------------------------------
    def agent(self) -> nn.Module:
        """The network the policy file holds."""
        return self.nets

    def policy(self, epsilon: float = 0.0) -> Any:
        """A copy of the current policy, to evaluate while training goes on."""
        return AgentNetPolicy(copy.deepcopy(self.agent()), self.mode, self.dims, self.opts.device, epsilon)

    def payload(self) -> dict:
        """The current policy as a policy-file payload (what drives a rollout refresh)."""
        o = self.opts
        return policy_payload(self.agent(), self.mode, self.dims, o.hidden, o.layers, obs_norm=self.obs_norm)

    def save_policy(self, path, meta: dict) -> None:
        o = self.opts
        net, mode, norm = self.agent(), self.mode, self.obs_norm
        save_policy(path, net, mode, self.dims, o.hidden, o.layers, meta, self.mixer(), norm)

    def mixer(self) -> dict | None:
        """The mixer saved beside the agent in the policy file (QMIX learners)."""
        return None

    # --- checkpoint round trip ---------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "nets": {k: v.detach().cpu() for k, v in self.nets.state_dict().items()},
            "optimiser": self.opt.state_dict(),
            "cql_generator": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.nets.load_state_dict(state["nets"])
        self.opt.load_state_dict(state["optimiser"])
        self.gen.set_state(state["cql_generator"])
