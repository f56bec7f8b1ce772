"""The continuous actor-critic learners: MA-CQL (`--algo macql` on continuous actions; Kumar et al.
2020's CQL-SAC per agent, as OMAR's and OMIGA's baselines; algos/macql_continuous.py) and MA-TD3+BC
(`--algo td3bc`; Fujimoto & Gu 2021 per agent; algos/td3bc.py). Both standardise observations with the
real data's statistics, keep an actor and twin critics with their own optimisers, and act with the
actor (policy modes "tanh_gaussian" and "deterministic"). Their option defaults are the references'."""

from __future__ import annotations

import abc
import copy
from typing import Any

import torch
from torch import nn

from logo_cli.algos.continuous_actor import OptimiserSet
from logo_cli.algos.gaussian_bc import obs_stats
from logo_cli.algos.macql_continuous import ContinuousCqlConfig, ContinuousCqlNets, continuous_cql_update
from logo_cli.algos.td3bc import Td3bcConfig, Td3bcNets, td3bc_update
from logo_cli.data.transitions import Transitions
from logo_cli.policies.actor_policy import DETERMINISTIC, TANH_GAUSSIAN, ContinuousActorPolicy
from logo_cli.train.learners.base import Learner, Options


class _ActorCritic(Learner):
    n_step = True
    nets: ContinuousCqlNets | Td3bcNets
    opt: OptimiserSet

    def __init__(self, dims, real: Transitions, opts: Options):
        assert opts.actor_lr is not None
        self.obs_norm = obs_stats(real)  # also held by the nets; recomputed from the data on resume
        super().__init__(dims, real, opts)

    @abc.abstractmethod
    def networks(self) -> ContinuousCqlNets | Td3bcNets:
        """The actor-critic's networks (before the observation statistics are set)."""

    def build(self, real: Transitions) -> nn.Module:
        assert self.obs_norm is not None
        nets = self.networks()
        nets.norm.set_stats(*self.obs_norm)
        return nets

    def optimiser(self) -> OptimiserSet:
        return self.nets.optimisers(self.opts.actor_lr, self.opts.lr)

    def agent(self) -> nn.Module:
        return self.nets.actor

    def policy(self, epsilon: float = 0.0) -> ContinuousActorPolicy:
        assert self.obs_norm is not None
        net = copy.deepcopy(self.agent())
        return ContinuousActorPolicy(net, self.mode, self.dims, *self.obs_norm, device=self.opts.device)


class ContinuousCqlLearner(_ActorCritic):
    mode = TANH_GAUSSIAN

    @classmethod
    def defaults(cls, opts: Options) -> dict[str, Any]:
        return {"lr": 3e-4, "actor_lr": 1e-4, "cql_samples": 10, "target_update_every": 1,
                "target_tau": 0.005}  # fmt: skip

    def __init__(self, dims, real: Transitions, opts: Options):
        super().__init__(dims, real, opts)
        assert opts.cql_samples is not None
        self.cfg = ContinuousCqlConfig(
            gamma=opts.gamma,
            cql_alpha=opts.cql_alpha,
            cql_samples=opts.cql_samples,
            target_update_every=opts.target_update_every,
            target_tau=opts.target_tau,
            entropy_alpha=opts.entropy_alpha,
            cql_synthetic=opts.cql_synthetic,
            bc_steps=opts.actor_bc_steps,
        )

    def networks(self) -> ContinuousCqlNets:
        return ContinuousCqlNets(self.dims, self.opts.hidden, self.opts.layers)

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        return continuous_cql_update(self.nets, self.opt, batch, self.cfg, step, self.gen)


class Td3bcLearner(_ActorCritic):
    mode = DETERMINISTIC

    @classmethod
    def defaults(cls, opts: Options) -> dict[str, Any]:
        # the targets move with each delayed actor update
        return {"lr": 3e-4, "actor_lr": 3e-4, "cql_samples": 10, "target_tau": 0.005,
                "target_update_every": opts.policy_delay}  # fmt: skip

    def __init__(self, dims, real: Transitions, opts: Options):
        super().__init__(dims, real, opts)
        self.cfg = Td3bcConfig(
            gamma=opts.gamma,
            alpha=opts.td3bc_alpha,
            policy_noise=opts.policy_noise,
            noise_clip=opts.noise_clip,
            policy_delay=opts.policy_delay,
            target_tau=opts.target_tau,
            bc_synthetic="data" if opts.cql_synthetic == "data" else "none",
        )

    def networks(self) -> Td3bcNets:
        return Td3bcNets(self.dims, self.opts.hidden, self.opts.layers)

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        return td3bc_update(self.nets, self.opt, batch, self.cfg, step, self.gen)
